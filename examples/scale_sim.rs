//! Checks the bus arithmetic of `docs/scale-out.md` by simulation, with no
//! broker and no network: two small models, seeded, so every run prints the
//! same tables.
//!
//! - **Partition assignment.** Nodes join and leave at random between 1 and 16
//!   live nodes. Each node works out on its own which partitions of the event
//!   topic are its, from the list of live nodes alone, by rendezvous
//!   (highest-random-weight) hashing or by `partition % N`. The model checks
//!   that every partition has exactly one owner after every change, and counts
//!   what moves and how evenly partitions spread.
//! - **Bus reads.** Users connect to nodes uniformly at random, one connection
//!   each, all online; conversations of `F` members are drawn from them and
//!   hashed to partitions; each send goes to a conversation drawn uniformly. It
//!   counts the events nodes read when every node reads every event, when a node
//!   reads a conversation's events only if it holds a member's connection, and
//!   when it must read a whole partition because it holds a member of any
//!   conversation in it (what a Kafka consumer can select).
//!
//! ```sh
//! cargo run --release --example scale_sim
//! cargo test --example scale_sim
//! ```

use std::collections::HashSet;

/// The seed of every random choice in `main`.
const SEED: u64 = 0x5ca1_e0f7;

/// The most nodes the membership walk keeps live.
const MAX_NODES: usize = 16;

/// splitmix64's finaliser: a cheap hash that spreads consecutive inputs over
/// the whole range, which partition and node ids are.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A node's claim on a partition under rendezvous hashing. The id breaks ties,
/// so two nodes can never both see themselves as the winner.
fn rank(partition: u32, node: u32) -> (u64, u32) {
    let w = mix(mix(u64::from(partition)) ^ u64::from(node).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    (w, node)
}

/// How a node decides which partitions of the event topic it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    /// Highest random weight: a partition is the live node's whose rank for it
    /// is highest.
    Rendezvous,
    /// `partition % N`, counting the live nodes in id order.
    Modulo,
}

impl Scheme {
    fn name(self) -> &'static str {
        match self {
            Scheme::Rendezvous => "rendezvous",
            Scheme::Modulo => "modulo",
        }
    }
}

/// The partitions `node` claims, seen from `node` alone: this is what each
/// node computes without a coordinator, so the model checks the claims
/// against each other instead of trusting one table.
fn claims(scheme: Scheme, node: u32, live: &[u32], partitions: u32) -> Vec<u32> {
    match scheme {
        Scheme::Rendezvous => (0..partitions)
            .filter(|&p| {
                live.iter()
                    .all(|&other| other == node || rank(p, node) > rank(p, other))
            })
            .collect(),
        Scheme::Modulo => match live.iter().position(|&n| n == node) {
            Some(i) => (0..partitions)
                .filter(|&p| p as usize % live.len() == i)
                .collect(),
            None => Vec::new(),
        },
    }
}

/// The owner of each partition, from every live node's claims; an error names
/// a partition that no node, or more than one, claims.
fn owners(scheme: Scheme, live: &[u32], partitions: u32) -> Result<Vec<u32>, String> {
    let mut claimed: Vec<Vec<u32>> = vec![Vec::new(); partitions as usize];
    for &node in live {
        for p in claims(scheme, node, live, partitions) {
            claimed[p as usize].push(node);
        }
    }
    claimed
        .into_iter()
        .enumerate()
        .map(|(p, by)| match by.as_slice() {
            [one] => Ok(*one),
            _ => Err(format!(
                "{}: partition {p} claimed by {by:?} with live nodes {live:?}",
                scheme.name()
            )),
        })
        .collect()
}

/// One change to the set of live nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Join(u32),
    Leave(u32),
}

/// Turns choices into changes that keep between 1 and [`MAX_NODES`] nodes
/// live, starting from the node `first`. `join` is followed when both are
/// possible; `pick` chooses the leaving node. A joining node gets a fresh id,
/// as a new process would.
fn walk(first: u32, choices: impl IntoIterator<Item = (bool, usize)>) -> Vec<Change> {
    let mut live = vec![first];
    let mut next = first;
    let mut changes = Vec::new();
    for (join, pick) in choices {
        if live.len() < MAX_NODES && (join || live.len() == 1) {
            next = next.wrapping_add(1);
            live.push(next);
            changes.push(Change::Join(next));
        } else {
            let gone = live.swap_remove(pick % live.len());
            changes.push(Change::Leave(gone));
        }
    }
    changes
}

/// A seeded random walk of `steps` changes.
fn random_walk(rng: &mut fastrand::Rng, steps: usize) -> (u32, Vec<Change>) {
    let first = rng.u32(..);
    let choices: Vec<(bool, usize)> = (0..steps).map(|_| (rng.bool(), rng.usize(..))).collect();
    (first, walk(first, choices))
}

/// What one change did to one scheme's assignment.
#[derive(Debug, Clone, Copy)]
struct Step {
    joined: bool,
    /// Live nodes after the change.
    nodes: usize,
    /// Partitions whose owner changed.
    moved: usize,
    /// Partitions the joining node took, or the leaving node held.
    share: usize,
    /// Whether every partition that moved went to the joining node, or came
    /// from the leaving one.
    only_that_node: bool,
    /// The most partitions one node owns after the change.
    max_load: usize,
}

/// Replays `changes` from the single live node `first`.
fn replay(
    scheme: Scheme,
    partitions: u32,
    first: u32,
    changes: &[Change],
) -> Result<Vec<Step>, String> {
    let mut live = vec![first];
    let mut before = owners(scheme, &live, partitions)?;
    let mut steps = Vec::with_capacity(changes.len());
    for &change in changes {
        let (node, joined) = match change {
            Change::Join(n) => {
                if let Err(at) = live.binary_search(&n) {
                    live.insert(at, n);
                }
                (n, true)
            }
            Change::Leave(n) => {
                live.retain(|&m| m != n);
                (n, false)
            }
        };
        let after = owners(scheme, &live, partitions)?;
        let moved: Vec<usize> = (0..before.len())
            .filter(|&p| before[p] != after[p])
            .collect();
        let side = if joined { &after } else { &before };
        let share = side.iter().filter(|&&o| o == node).count();
        let only_that_node = moved.iter().all(|&p| side[p] == node);
        let max_load = live
            .iter()
            .map(|&n| after.iter().filter(|&&o| o == n).count())
            .max()
            .unwrap_or(0);
        steps.push(Step {
            joined,
            nodes: live.len(),
            moved: moved.len(),
            share,
            only_that_node,
            max_load,
        });
        before = after;
    }
    Ok(steps)
}

/// Averages over one replay.
#[derive(Debug, Clone, Copy, Default)]
struct Summary {
    joins: usize,
    /// Mean partitions moved per join.
    moved_join: f64,
    /// Mean of `P / N` after each join: the joining node's fair share, the
    /// least any balanced scheme must move.
    ideal_join: f64,
    leaves: usize,
    /// Mean partitions moved per leave.
    moved_leave: f64,
    /// Mean partitions the leaving node held.
    share_leave: f64,
    /// Mean and worst of the busiest node's partitions over the mean.
    balance_mean: f64,
    balance_worst: f64,
}

fn summarize(partitions: u32, steps: &[Step]) -> Summary {
    let mut s = Summary::default();
    for st in steps {
        let mean_load = f64::from(partitions) / st.nodes as f64;
        let balance = st.max_load as f64 / mean_load;
        s.balance_mean += balance;
        s.balance_worst = s.balance_worst.max(balance);
        if st.joined {
            s.joins += 1;
            s.moved_join += st.moved as f64;
            s.ideal_join += mean_load;
        } else {
            s.leaves += 1;
            s.moved_leave += st.moved as f64;
            s.share_leave += st.share as f64;
        }
    }
    let per = |x: f64, n: usize| if n == 0 { 0.0 } else { x / n as f64 };
    s.moved_join = per(s.moved_join, s.joins);
    s.ideal_join = per(s.ideal_join, s.joins);
    s.moved_leave = per(s.moved_leave, s.leaves);
    s.share_leave = per(s.share_leave, s.leaves);
    s.balance_mean = per(s.balance_mean, steps.len());
    s
}

/// One bus-traffic scenario.
#[derive(Debug, Clone, Copy)]
struct Traffic {
    /// At most 64: a node set is a bit mask.
    nodes: u32,
    partitions: u32,
    connections_per_node: u32,
    conversations_per_user: u32,
    /// Members per conversation (`F`).
    audience: u32,
    sends: u32,
}

/// Events read by nodes over a scenario's sends, under each way of reading.
#[derive(Debug, Clone, Copy, Default)]
struct Reads {
    /// Every node reads every event.
    every_node: u64,
    /// A node reads a conversation's events iff it holds a member.
    per_conversation: u64,
    /// A node reads a whole partition iff it holds a member of any
    /// conversation hashed to it.
    per_partition: u64,
    /// Sends whose conversation-level readers exceeded `min(N, F)` or whose
    /// partition-level readers fell outside conversation-level..=N; zero
    /// unless the model is wrong.
    violations: u64,
}

fn simulate(t: Traffic, rng: &mut fastrand::Rng) -> Reads {
    assert!(t.nodes >= 1 && t.nodes <= 64, "a node set is a u64 mask");
    let users = t.nodes as usize * t.connections_per_node as usize;
    let audience = t.audience as usize;
    assert!(
        audience <= users,
        "a conversation's members are distinct users"
    );
    let node_of: Vec<u32> = (0..users).map(|_| rng.u32(..t.nodes)).collect();
    let conversations = (users * t.conversations_per_user as usize / audience).max(1);

    let mut holders = Vec::with_capacity(conversations);
    let mut partition_of = Vec::with_capacity(conversations);
    let mut partition_holders = vec![0u64; t.partitions as usize];
    let mut members = HashSet::with_capacity(audience);
    for _ in 0..conversations {
        members.clear();
        while members.len() < audience {
            members.insert(rng.usize(..users));
        }
        let mask = members.iter().fold(0u64, |m, &u| m | 1 << node_of[u]);
        // The record key is hashed to a partition; a random draw is that hash.
        let p = rng.usize(..t.partitions as usize);
        holders.push(mask);
        partition_of.push(p);
        partition_holders[p] |= mask;
    }

    let cap = u64::from(t.nodes.min(t.audience));
    let mut r = Reads::default();
    for _ in 0..t.sends {
        let c = rng.usize(..conversations);
        let conv = u64::from(holders[c].count_ones());
        let part = u64::from(partition_holders[partition_of[c]].count_ones());
        if conv > cap || part < conv || part > u64::from(t.nodes) {
            r.violations += 1;
        }
        r.every_node += u64::from(t.nodes);
        r.per_conversation += conv;
        r.per_partition += part;
    }
    r
}

/// Expected nodes holding at least one of `f` members placed uniformly on `n`
/// nodes: `N(1 - (1 - 1/N)^F)`.
fn expected_holders(n: u32, f: u32) -> f64 {
    let n = f64::from(n);
    n * (1.0 - (1.0 - 1.0 / n).powf(f64::from(f)))
}

fn per_send(total: u64, sends: u32) -> f64 {
    total as f64 / f64::from(sends)
}

/// The scenario grid `main` prints.
const NODES: u32 = 10;
const CONVERSATIONS_PER_USER: u32 = 10;
const AUDIENCES: [u32; 3] = [2, 10, 100];
const CONNECTIONS: [u32; 4] = [10, 100, 1_000, 10_000];
const SENDS: u32 = 100_000;
const WALK_STEPS: usize = 2_000;

fn main() -> Result<(), String> {
    let mut rng = fastrand::Rng::with_seed(SEED);

    let (first, changes) = random_walk(&mut rng, WALK_STEPS);
    println!(
        "Partition assignment: {WALK_STEPS} joins and leaves between 1 and {MAX_NODES} nodes \
         (seed {SEED:#x})"
    );
    println!(
        "{:>4}  {:<10}  {:>10}  {:>9}  {:>11}  {:>11}  {:>13}  {:>5}",
        "P",
        "scheme",
        "moved/join",
        "P/N after",
        "moved/leave",
        "leaver held",
        "max/mean load",
        "worst"
    );
    for partitions in [64, 256] {
        for scheme in [Scheme::Rendezvous, Scheme::Modulo] {
            let steps = replay(scheme, partitions, first, &changes)?;
            let s = summarize(partitions, &steps);
            let clean = steps.iter().all(|st| st.only_that_node);
            println!(
                "{:>4}  {:<10}  {:>10.1}  {:>9.1}  {:>11.1}  {:>11.1}  {:>13.2}  {:>5.2}{}",
                partitions,
                scheme.name(),
                s.moved_join,
                s.ideal_join,
                s.moved_leave,
                s.share_leave,
                s.balance_mean,
                s.balance_worst,
                if clean {
                    ""
                } else {
                    "  moves between staying nodes"
                }
            );
        }
    }
    println!("Every partition had exactly one owner after every change.");

    for partitions in [64, 256] {
        println!();
        println!(
            "Bus reads per send: N = {NODES} nodes, P = {partitions} partitions, \
             {CONVERSATIONS_PER_USER} conversations per user, {SENDS} sends per cell"
        );
        print!(
            "{:>4}  {:>4}  {:>6}  {:>8}  {:>8}",
            "F", "all", "conv", "expected", "min(N,F)"
        );
        for c in CONNECTIONS {
            print!("  {:>9}", format!("part@{c}"));
        }
        println!();
        for f in AUDIENCES {
            let mut conv = None;
            let mut line = String::new();
            for c in CONNECTIONS {
                let t = Traffic {
                    nodes: NODES,
                    partitions,
                    connections_per_node: c,
                    conversations_per_user: CONVERSATIONS_PER_USER,
                    audience: f,
                    sends: SENDS,
                };
                if NODES * c < f {
                    line.push_str(&format!("  {:>9}", "-"));
                    continue;
                }
                let r = simulate(t, &mut rng);
                if r.violations > 0 {
                    return Err(format!("{t:?}: {} sends broke the model", r.violations));
                }
                conv = Some((
                    per_send(r.every_node, SENDS),
                    per_send(r.per_conversation, SENDS),
                ));
                line.push_str(&format!("  {:>9.2}", per_send(r.per_partition, SENDS)));
            }
            let (all, conv) = conv.unwrap_or_default();
            println!(
                "{f:>4}  {all:>4.0}  {conv:>6.2}  {:>8.2}  {:>8}{line}",
                expected_holders(NODES, f),
                NODES.min(f)
            );
        }
    }
    println!(
        "all: every node reads every event. conv: nodes holding a member, at the \
         largest connection count.\nexpected: N(1-(1-1/N)^F). part@c: nodes that must \
         read the conversation's partition, c connections per node."
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Binomial standard deviations allowed for one join's moves: a partition
    /// goes to the joining node with probability 1/N, independently, so the
    /// count is binomial and six deviations are not reached by chance here.
    const SIGMAS: f64 = 6.0;

    fn check_rendezvous(partitions: u32, first: u32, changes: &[Change]) -> Vec<Step> {
        let steps = replay(Scheme::Rendezvous, partitions, first, changes).unwrap();
        for (i, st) in steps.iter().enumerate() {
            assert!(
                st.only_that_node,
                "step {i}: {st:?} moved between staying nodes"
            );
            assert_eq!(st.moved, st.share, "step {i}: {st:?}");
            if st.joined {
                let q = 1.0 / st.nodes as f64;
                let mean = f64::from(partitions) * q;
                let sd = (mean * (1.0 - q)).sqrt();
                assert!(
                    (st.moved as f64 - mean).abs() <= SIGMAS * sd + 1.0,
                    "step {i}: join moved {} of {partitions}, expected about {mean:.1}",
                    st.moved
                );
            }
        }
        steps
    }

    #[test]
    fn rendezvous_moves_only_the_changed_nodes_share() {
        let mut rng = fastrand::Rng::with_seed(1);
        for partitions in [64, 256] {
            let (first, changes) = random_walk(&mut rng, 400);
            let steps = check_rendezvous(partitions, first, &changes);
            let s = summarize(partitions, &steps);
            assert!(s.joins > 100 && s.leaves > 100, "{s:?}");
            // Over many joins the mean is the fair share, not just bounded by it.
            let ratio = s.moved_join / s.ideal_join;
            assert!((ratio - 1.0).abs() < 0.1, "{s:?}");
            assert!((s.moved_leave - s.share_leave).abs() < 1e-9, "{s:?}");
        }
    }

    #[test]
    fn modulo_keeps_one_owner_but_moves_far_more() {
        let mut rng = fastrand::Rng::with_seed(2);
        for partitions in [64, 256] {
            let (first, changes) = random_walk(&mut rng, 400);
            let hrw = summarize(
                partitions,
                &replay(Scheme::Rendezvous, partitions, first, &changes).unwrap(),
            );
            let steps = replay(Scheme::Modulo, partitions, first, &changes).unwrap();
            let m = summarize(partitions, &steps);
            assert!(m.moved_join > 4.0 * hrw.moved_join, "{m:?} vs {hrw:?}");
            assert!(m.moved_leave > 4.0 * hrw.moved_leave, "{m:?} vs {hrw:?}");
            assert!(steps.iter().any(|st| !st.only_that_node));
            // Modulo's one virtue: no node holds more than its rounded-up share.
            for st in &steps {
                assert_eq!(st.max_load, (partitions as usize).div_ceil(st.nodes));
            }
        }
    }

    #[test]
    fn rendezvous_load_stays_within_a_binomial_bound() {
        let mut rng = fastrand::Rng::with_seed(3);
        for partitions in [64, 256] {
            let (first, changes) = random_walk(&mut rng, 400);
            let steps = replay(Scheme::Rendezvous, partitions, first, &changes).unwrap();
            for st in &steps {
                let mean = f64::from(partitions) / st.nodes as f64;
                let bound = mean + SIGMAS * mean.sqrt() + 1.0;
                assert!(st.max_load as f64 <= bound, "{st:?}: bound {bound:.1}");
            }
            let s = summarize(partitions, &steps);
            // More partitions per node, better spread: the case for a larger P.
            let limit = if partitions == 64 { 2.5 } else { 1.7 };
            assert!(s.balance_mean < limit, "{s:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn every_partition_has_one_owner_and_moves_are_minimal(
            first in any::<u32>(),
            choices in proptest::collection::vec((any::<bool>(), any::<usize>()), 1..80),
            big in any::<bool>(),
        ) {
            let partitions = if big { 256 } else { 64 };
            let changes = walk(first, choices);
            check_rendezvous(partitions, first, &changes);
            // Modulo can fail minimality, never ownership: replay errs on either.
            replay(Scheme::Modulo, partitions, first, &changes).unwrap();
        }
    }

    fn scenario(partitions: u32, c: u32, f: u32, sends: u32) -> Traffic {
        Traffic {
            nodes: NODES,
            partitions,
            connections_per_node: c,
            conversations_per_user: CONVERSATIONS_PER_USER,
            audience: f,
            sends,
        }
    }

    #[test]
    fn conversation_interest_matches_the_formula() {
        let mut rng = fastrand::Rng::with_seed(4);
        for nodes in [2, 4, 10, 16] {
            for f in AUDIENCES {
                let t = Traffic {
                    nodes,
                    ..scenario(64, 100, f, 20_000)
                };
                let r = simulate(t, &mut rng);
                assert_eq!(r.violations, 0, "{t:?}");
                let got = per_send(r.per_conversation, t.sends);
                let want = expected_holders(nodes, f);
                assert!(want <= f64::from(nodes.min(f)));
                assert!((got - want).abs() <= 0.03 * want, "{t:?}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn partition_interest_lies_between_and_saturates_with_connections() {
        let mut rng = fastrand::Rng::with_seed(5);
        for partitions in [64, 256] {
            for f in AUDIENCES {
                let mut last = 0.0;
                for c in [10, 100, 1_000] {
                    let t = scenario(partitions, c, f, 20_000);
                    let r = simulate(t, &mut rng);
                    assert_eq!(r.violations, 0, "{t:?}");
                    assert!(r.per_conversation <= r.per_partition, "{t:?}");
                    assert!(r.per_partition <= r.every_node, "{t:?}");
                    let share = r.per_partition as f64 / r.every_node as f64;
                    assert!(share >= last - 0.01, "{t:?}: {share} after {last}");
                    last = share;
                    if c * CONVERSATIONS_PER_USER >= 20 * partitions {
                        // Each node's memberships outnumber the partitions many
                        // times over: it holds a member somewhere in each one.
                        assert!(share > 0.99, "{t:?}: {share}");
                    }
                }
            }
        }
        // Few connections per node and many partitions: it does save reads.
        let t = scenario(256, 10, 2, 20_000);
        let r = simulate(t, &mut rng);
        assert!(
            (r.per_partition as f64) < 0.6 * r.every_node as f64,
            "{r:?}"
        );
    }
}
