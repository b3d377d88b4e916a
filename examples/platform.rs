//! The whole caas platform in one process on its embedded default.
//!
//! ```sh
//! cargo run --example platform -- --demo
//! ```
//!
//! Configuration: `--config caas.toml` overridden by `CAAS_LISTEN`, `CAAS_DATA_DIR`,
//! `CAAS_OPERATOR_KEY`, `CAAS_LOG`. Logs are JSON lines on stderr. SIGTERM or
//! SIGINT stops accepting, finishes requests in flight and exits.

use std::path::PathBuf;

use caas::platform::{PlatformConfig, create_demo, start};

fn usage() -> ! {
    eprintln!("usage: platform [--config FILE] [--demo]");
    std::process::exit(2)
}

#[tokio::main]
async fn main() {
    let mut config_file: Option<PathBuf> = None;
    let mut demo = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" => {
                config_file = Some(args.next().map(PathBuf::from).unwrap_or_else(|| usage()))
            }
            "--demo" => demo = true,
            "-h" | "--help" => usage(),
            other => {
                eprintln!("unknown argument `{other}`");
                usage()
            }
        }
    }
    let config = match PlatformConfig::load(config_file.as_deref(), |k| std::env::var(k).ok()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let filter = match tracing_subscriber::EnvFilter::try_new(&config.log) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("configuration: CAAS_LOG `{}`: {e}", config.log);
            std::process::exit(1);
        }
    };
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    let platform = match start(config).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let base = format!("http://{}", platform.addr);
    println!("caas is listening on {base}");
    if let Some(key) = &platform.generated_operator_key {
        // Printed once, on the first start; only its hash is kept in the data dir.
        println!("operator key (shown once, keep it safe): {key}");
    }
    if demo {
        match create_demo(&platform).await {
            Ok(d) => {
                println!(
                    "\ndemo tenant {} — tenant secret (shown once): {}",
                    d.tenant_id, d.tenant_secret
                );
                for (user, token) in &d.tokens {
                    println!("  {user}'s access token (1 h): {token}");
                }
                let (alice, bob) = (&d.tokens[0].1, &d.tokens[1].1);
                println!("\nAlice opens a conversation with Bob and says hi:");
                println!(
                    "  CONV=$(curl -s -X POST {base}/v1/conversations -H 'Authorization: Bearer {alice}' -H 'content-type: application/json' -d '{{\"kind\":\"direct\",\"members\":[\"bob\"]}}' | sed 's/.*\"id\":\"\\([^\"]*\\)\".*/\\1/')"
                );
                println!(
                    "  curl -s -X POST {base}/v1/conversations/$CONV/messages -H 'Authorization: Bearer {alice}' -H 'content-type: application/json' -d '{{\"client_msg_id\":\"m-1\",\"body\":\"hi Bob\"}}'"
                );
                println!("Bob catches up:");
                println!("  curl -s '{base}/v1/sync?since=0' -H 'Authorization: Bearer {bob}'");
            }
            Err(e) => {
                eprintln!("demo: {e}");
                std::process::exit(1);
            }
        }
    }

    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot listen for SIGTERM: {e}");
            std::process::exit(1);
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down: no new connections, finishing requests in flight");
    if let Err(e) = platform.shutdown().await {
        eprintln!("shutdown: {e}");
        std::process::exit(1);
    }
}
