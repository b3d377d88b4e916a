//! A server process that is stopped with SIGKILL when stopped or dropped: the
//! fault tests want an abrupt end, as a crash or a pulled cable would give.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// A program and its arguments, started again on each [`Daemon::start`].
#[derive(Debug)]
pub(crate) struct Daemon {
    program: PathBuf,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

impl Daemon {
    pub(crate) fn new(program: PathBuf, args: Vec<String>, log: PathBuf) -> Self {
        Self {
            program,
            args,
            log,
            child: None,
        }
    }

    /// Whether the program can be found (a path that exists, or a name on `PATH`).
    pub(crate) fn exists(program: &std::path::Path) -> bool {
        if program.components().count() > 1 {
            return program.is_file();
        }
        std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
    }

    /// Starts the process (its output appended to the log).
    pub(crate) fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", self.log.display()));
        let err = log
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", self.log.display()));
        let child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.program.display()));
        self.child = Some(child);
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the process has exited by itself.
    pub(crate) fn exited(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => !matches!(c.try_wait(), Ok(None)),
            None => true,
        }
    }

    /// The log's text, for a failure message.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::Daemon;
    use std::path::Path;

    #[test]
    fn finds_programs_on_the_path_and_by_path() {
        assert!(Daemon::exists(Path::new("sh")));
        assert!(Daemon::exists(Path::new("/bin/sh")));
        assert!(!Daemon::exists(Path::new("no-such-program-caas")));
        assert!(!Daemon::exists(Path::new("/no/such/program")));
    }

    /// Waits (up to 10 s) until the log holds `word` `n` times: a process
    /// just spawned has not necessarily run its first line yet.
    fn wait_for_log(d: &Daemon, word: &str, n: usize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while d.log().matches(word).count() < n {
            assert!(std::time::Instant::now() < deadline, "log: {}", d.log());
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    #[test]
    fn a_killed_daemon_can_start_again_and_logs_its_output() {
        let dir = crate::temp_dir("daemon", 0);
        let mut d = Daemon::new(
            "sh".into(),
            vec!["-c".into(), "echo started; sleep 30".into()],
            dir.join("log"),
        );
        d.start();
        wait_for_log(&d, "started", 1);
        assert!(!d.exited());
        d.kill();
        assert!(d.exited());
        d.start();
        wait_for_log(&d, "started", 2);
        assert!(!d.exited());
        drop(d);
        let _ = std::fs::remove_dir_all(dir);
    }
}
