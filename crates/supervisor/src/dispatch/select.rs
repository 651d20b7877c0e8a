//! Selection: which fax server takes which due job. A pure function of the fleet, the queue, the time and
//! the access rule, so its rules are tested here without a store, links or a clock.

use super::fleet::FaxServer;
use super::queue::{Pending, Queue};
use std::collections::HashMap;

/// One dispatch round's choices, (job id, fax server id), for the due jobs in dispatch order while free
/// channels remain. `may_send(client, fax_server)` is the access rule (they share a grouping).
pub(super) fn plan(
    fax_servers: &HashMap<String, FaxServer>,
    queue: &Queue,
    now: i64,
    may_send: impl Fn(&str, &str) -> bool,
) -> Vec<(String, String)> {
    let mut capacity: u32 = fax_servers
        .values()
        .filter(|s| s.takes_offers())
        .map(FaxServer::free_channels)
        .sum();
    // The fleet in one order for the round, and per client which of it the access rule allows (asked
    // once per client and fax server, not once per job).
    let fleet: Vec<(&String, &FaxServer)> = fax_servers.iter().collect();
    let mut allowed: HashMap<&str, Vec<bool>> = HashMap::new();
    let mut taken = vec![0u32; fleet.len()];
    let mut chosen = Vec::new();
    for p in queue.ready() {
        if capacity == 0 {
            break;
        }
        let allowed = allowed.entry(p.client_id.as_str()).or_insert_with(|| {
            fleet
                .iter()
                .map(|(id, _)| may_send(&p.client_id, id))
                .collect()
        });
        if let Some(i) = best(&fleet, allowed, p, now, &taken) {
            capacity -= 1;
            taken[i] += 1;
            chosen.push((p.job_id.clone(), fleet[i].0.clone()));
        }
    }
    chosen
}

/// The proper fax server for a job (its index in `fleet`): shares a grouping with the client (`allowed`),
/// takes offers, has a free channel, is not avoided after failing the job, may dial the number (the most
/// specific route wins), then the least loaded and healthiest, then the smallest id (so equal choices are
/// stable). `taken` counts the channels this round has already promised.
fn best(
    fleet: &[(&String, &FaxServer)],
    allowed: &[bool],
    p: &Pending,
    now: i64,
    taken: &[u32],
) -> Option<usize> {
    let mut best: Option<(usize, f64, &String, usize)> = None;
    for (i, (id, s)) in fleet.iter().enumerate() {
        let free = s.free_channels().saturating_sub(taken[i]);
        if !allowed[i]
            || !s.takes_offers()
            || free == 0
            || p.avoid.get(*id).is_some_and(|until| *until > now)
        {
            continue;
        }
        let Some(specificity) = s.route_to(&p.recipient) else {
            continue;
        };
        let channels = f64::from(s.caps.channels.max(1));
        let load = (channels - f64::from(free)) / channels;
        let score = load + (1.0 - s.health);
        let better = match &best {
            None => true,
            Some((bs, bscore, bid, _)) => {
                specificity > *bs
                    || (specificity == *bs && (score < *bscore || (score == *bscore && *id < *bid)))
            }
        };
        if better {
            best = Some((specificity, score, id, i));
        }
    }
    best.map(|(_, _, _, i)| i)
}

#[cfg(test)]
mod tests {
    use super::super::fleet::{Link, longest_prefix};
    use super::*;
    use protocol::Capabilities;
    use tokio::sync::mpsc;

    #[test]
    fn prefix_routes() {
        let p = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(longest_prefix(&p(&[]), "+8131234"), Some(0));
        assert_eq!(longest_prefix(&p(&["+81"]), "+8131234"), Some(3));
        assert_eq!(longest_prefix(&p(&["+8", "+813"]), "+8131234"), Some(4));
        assert_eq!(longest_prefix(&p(&["+1"]), "+8131234"), None);
    }

    /// A linked fax server with `channels` channels, `busy` of them in use.
    fn linked(prefixes: &[&str], channels: u32, busy: usize) -> FaxServer {
        let caps = Capabilities {
            channels,
            ..Default::default()
        };
        let mut s = FaxServer::new(prefixes.iter().map(|p| (*p).to_owned()).collect(), caps);
        s.link = Some(Link {
            tx: mpsc::unbounded_channel().0,
            generation: 1,
        });
        s.open = (0..busy).map(|i| format!("att{i}")).collect();
        s
    }

    fn fleet(servers: Vec<(&str, FaxServer)>) -> HashMap<String, FaxServer> {
        servers
            .into_iter()
            .map(|(id, s)| (id.to_owned(), s))
            .collect()
    }

    fn job(id: &str, client: &str, recipient: &str) -> Pending {
        Pending {
            client_id: client.to_owned(),
            recipient: recipient.to_owned(),
            ..Pending::fixture(id, 0, 0)
        }
    }

    fn queue(jobs: Vec<Pending>) -> Queue {
        let mut q = Queue::default();
        for (i, mut p) in jobs.into_iter().enumerate() {
            p.not_before = i64::try_from(i).unwrap_or(0);
            q.insert(p, 1_000);
        }
        q
    }

    fn anyone(_: &str, _: &str) -> bool {
        true
    }

    fn picks(fleet: &HashMap<String, FaxServer>, q: &Queue) -> Vec<(String, String)> {
        plan(fleet, q, 1_000, anyone)
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn the_most_specific_route_wins_over_a_less_loaded_fax_server() {
        let f = fleet(vec![
            ("fs-default", linked(&[], 4, 0)),
            ("fs-japan", linked(&["+81"], 4, 3)),
            ("fs-tokyo", linked(&["+813"], 4, 3)),
        ]);
        let q = queue(vec![
            job("j1", "c", "+8131234"),
            job("j2", "c", "+15550100"),
        ]);
        assert_eq!(
            picks(&f, &q),
            pairs(&[("j1", "fs-tokyo"), ("j2", "fs-default")])
        );
    }

    #[test]
    fn among_equal_routes_the_least_loaded_then_the_healthiest_then_the_smallest_id() {
        let mut f = fleet(vec![
            ("fs-b", linked(&[], 4, 0)),
            ("fs-a", linked(&[], 4, 0)),
            ("fs-c", linked(&[], 4, 2)),
        ]);
        let q = queue(vec![job("j1", "c", "+1")]);
        assert_eq!(
            picks(&f, &q),
            pairs(&[("j1", "fs-a")]),
            "a tie: the smallest id"
        );
        if let Some(a) = f.get_mut("fs-a") {
            a.health = 0.5;
        }
        assert_eq!(
            picks(&f, &q),
            pairs(&[("j1", "fs-b")]),
            "then the healthier"
        );
        let q = queue(vec![
            job("j1", "c", "+1"),
            job("j2", "c", "+1"),
            job("j3", "c", "+1"),
        ]);
        assert_eq!(
            picks(&f, &q),
            pairs(&[("j1", "fs-b"), ("j2", "fs-b"), ("j3", "fs-a")]),
            "the channels a round promised count as load"
        );
    }

    #[test]
    fn a_round_promises_no_more_than_the_free_channels() {
        let f = fleet(vec![
            ("fs-a", linked(&[], 2, 1)),
            ("fs-b", linked(&[], 1, 0)),
        ]);
        let q = queue((0..5).map(|i| job(&format!("j{i}"), "c", "+1")).collect());
        let chosen = picks(&f, &q);
        assert_eq!(chosen.len(), 2, "{chosen:?}");
        let on = |id: &str| chosen.iter().filter(|(_, fs)| fs == id).count();
        assert_eq!((on("fs-a"), on("fs-b")), (1, 1));
        assert_eq!(chosen[0].0, "j0", "in dispatch order");
        assert_eq!(chosen[1].0, "j1");
    }

    #[test]
    fn unlinked_withdrawn_full_avoided_and_unreachable_fax_servers_take_nothing() {
        let mut unlinked = linked(&[], 4, 0);
        unlinked.link = None;
        let mut withdrawn = linked(&[], 4, 0);
        withdrawn.withdrawn = Some("revoked".into());
        let mut cannot_reach = linked(&[], 4, 0);
        cannot_reach.caps.reachable_prefixes = vec!["+44".into()];
        let mut receiving = linked(&[], 2, 1);
        receiving.receiving = 1;
        let f = fleet(vec![
            ("fs-unlinked", unlinked),
            ("fs-withdrawn", withdrawn),
            ("fs-full", linked(&[], 2, 2)),
            ("fs-receiving", receiving),
            ("fs-other-route", linked(&["+49"], 4, 0)),
            ("fs-cannot-reach", cannot_reach),
            ("fs-avoided", linked(&[], 4, 0)),
        ]);
        let mut p = job("j1", "c", "+15550100");
        p.avoid.insert("fs-avoided".into(), 1_001);
        let q = queue(vec![p.clone()]);
        assert!(picks(&f, &q).is_empty());
        p.avoid.insert("fs-avoided".into(), 1_000);
        let q = queue(vec![p]);
        assert_eq!(
            picks(&f, &q),
            pairs(&[("j1", "fs-avoided")]),
            "avoided only until its time"
        );
    }

    #[test]
    fn a_job_goes_only_to_a_fax_server_its_client_shares_a_grouping_with() {
        let f = fleet(vec![
            ("fs-a", linked(&[], 4, 0)),
            ("fs-b", linked(&[], 4, 0)),
        ]);
        let q = queue(vec![job("j1", "alice", "+1"), job("j2", "bob", "+1")]);
        let shared = |client: &str, fs: &str| (client, fs) == ("alice", "fs-b");
        assert_eq!(
            plan(&f, &q, 1_000, shared),
            pairs(&[("j1", "fs-b")]),
            "bob's job waits: no fax server of his"
        );
    }
}
