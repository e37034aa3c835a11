//! The identity rules: which pseudonym an event's person gets, given what is known
//! when it comes, and what that changes. Pure: the transform applies the decision.
//!
//! - A registration gets the pseudonym of what the hub registered, unless the hub's
//!   reference already has one from an earlier registration (registered again, say
//!   with another e-mail address, a person stays one person).
//! - An event naming a reference before its registration gets the reference's own
//!   pseudonym; the registration's replaces it when the registration comes, in the
//!   rows of the round or in the lake, so that the person links across hubs
//!   whatever the order.
//! - A withdrawal withdraws its person's pseudonym; a later event about a withdrawn
//!   person is dropped, and a registration of a withdrawn person drops what was sent
//!   about them before it too.

use crate::pseudonym::PseudonymKey;
use crate::tables::{Subject, referenced_participant};

/// What is known of people when an event comes: the links and withdrawals of the
/// rounds before, and those of the round so far.
pub(crate) trait Known {
    /// The pseudonym a hub's reference is linked to, in this round or before it.
    fn linked(&self, hub_id: &str, reference: &str) -> Option<String>;
    /// Whether the reference was linked in a round before this one (its rows are in
    /// the lake, not only in this round's).
    fn linked_before(&self, hub_id: &str, reference: &str) -> bool;
    fn is_withdrawn(&self, pseudonym: &str) -> bool;
}

/// Where the rows of a provisional pseudonym are, that a registration's replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowsAt {
    /// In this round's rows, not yet written.
    Round,
    /// In the lake: rewritten by the next relink.
    Lake,
}

/// What becomes of the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Its row counts.
    Row,
    /// A withdrawal: noted, adds no row.
    Withdrawal,
    /// About a withdrawn person: dropped.
    Dropped,
}

/// The rules' decision for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decision {
    pub(crate) verdict: Verdict,
    /// The pseudonym of the person the event is about, if it is about one.
    pub(crate) pseudonym: Option<String>,
    /// The hub's reference to link to `pseudonym` from now on.
    pub(crate) link: Option<(String, String)>,
    /// A provisional pseudonym the registration's replaces, and where its rows are.
    pub(crate) relink: Option<(String, RowsAt)>,
    /// A provisional pseudonym withdrawn with the person it turned out to be.
    pub(crate) also_withdrawn: Option<String>,
    /// The event names a reference not registered (yet).
    pub(crate) unregistered: bool,
}

/// Decides for an event about `subject`; `withdrawal` when it is a consent
/// withdrawal.
pub(crate) fn decide(
    subject: Subject,
    withdrawal: bool,
    key: &PseudonymKey,
    known: &impl Known,
) -> Decision {
    let mut decision = Decision {
        verdict: Verdict::Row,
        pseudonym: None,
        link: None,
        relink: None,
        also_withdrawn: None,
        unregistered: false,
    };
    match subject {
        Subject::Nobody => {}
        Subject::Registered {
            hub_id,
            reference,
            pseudonym,
        } => {
            let assigned = match known.linked(&hub_id, &reference) {
                Some(provisional)
                    if provisional != pseudonym
                        && provisional
                            == referenced_participant(key, None, &hub_id, &reference)
                        && !known.is_withdrawn(&provisional) =>
                {
                    if known.is_withdrawn(&pseudonym) {
                        // The person withdrew (at another hub, say): what was sent
                        // about them before this registration goes too.
                        decision.also_withdrawn = Some(provisional);
                    } else {
                        let at = if known.linked_before(&hub_id, &reference) {
                            RowsAt::Lake
                        } else {
                            RowsAt::Round
                        };
                        decision.relink = Some((provisional, at));
                    }
                    pseudonym
                }
                Some(first) => first,
                None => pseudonym,
            };
            decision.pseudonym = Some(assigned);
            decision.link = Some((hub_id, reference));
        }
        Subject::Ambassador { pseudonym } => decision.pseudonym = Some(pseudonym),
        Subject::Referenced { hub_id, reference } => {
            let linked = known.linked(&hub_id, &reference);
            decision.unregistered = linked.is_none();
            decision.pseudonym = Some(referenced_participant(key, linked, &hub_id, &reference));
            // Noted, so that the registration can replace it when it comes.
            if decision.unregistered {
                decision.link = Some((hub_id, reference));
            }
        }
    }
    decision.verdict = if withdrawal {
        Verdict::Withdrawal
    } else if decision
        .pseudonym
        .as_deref()
        .is_some_and(|p| known.is_withdrawn(p))
    {
        Verdict::Dropped
    } else {
        Verdict::Row
    };
    decision
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;
    use crate::pseudonym::Person;

    /// Links and withdrawals as plain sets: (hub, reference) → (pseudonym, before
    /// this round).
    #[derive(Default)]
    struct Facts {
        links: HashMap<(String, String), (String, bool)>,
        withdrawn: HashSet<String>,
    }

    impl Known for Facts {
        fn linked(&self, hub_id: &str, reference: &str) -> Option<String> {
            let key = (hub_id.to_string(), reference.to_string());
            self.links.get(&key).map(|(p, _)| p.clone())
        }
        fn linked_before(&self, hub_id: &str, reference: &str) -> bool {
            let key = (hub_id.to_string(), reference.to_string());
            self.links.get(&key).is_some_and(|(_, before)| *before)
        }
        fn is_withdrawn(&self, pseudonym: &str) -> bool {
            self.withdrawn.contains(pseudonym)
        }
    }

    fn key() -> PseudonymKey {
        PseudonymKey::new("k1", vec![7; 32]).expect("key")
    }

    /// The pseudonym of a registration by e-mail, computed here as the pseudonym
    /// module documents it.
    fn registered(email: &str) -> String {
        key().participant(
            "tec-deventer",
            Person {
                reference: "P-1",
                email: Some(email),
                name: Some("Anna"),
                birth_date: None,
            },
        )
    }

    fn by_reference() -> String {
        key().participant(
            "tec-deventer",
            Person {
                reference: "P-1",
                email: None,
                name: None,
                birth_date: None,
            },
        )
    }

    fn registration(email: &str) -> Subject {
        Subject::Registered {
            hub_id: "tec-deventer".into(),
            reference: "P-1".into(),
            pseudonym: registered(email),
        }
    }

    fn referenced() -> Subject {
        Subject::Referenced {
            hub_id: "tec-deventer".into(),
            reference: "P-1".into(),
        }
    }

    fn p1() -> (String, String) {
        ("tec-deventer".into(), "P-1".into())
    }

    fn link(facts: &mut Facts, pseudonym: String, before: bool) {
        facts.links.insert(p1(), (pseudonym, before));
    }

    #[test]
    fn a_first_registration_links_its_reference_to_its_pseudonym() {
        let decision = decide(
            registration("anna@example.org"),
            false,
            &key(),
            &Facts::default(),
        );
        assert_eq!(decision.verdict, Verdict::Row);
        assert_eq!(decision.pseudonym, Some(registered("anna@example.org")));
        assert_eq!(decision.link, Some(p1()));
        assert_eq!((decision.relink, decision.also_withdrawn), (None, None));
        assert!(!decision.unregistered);
    }

    #[test]
    fn an_event_before_the_registration_has_the_references_pseudonym() {
        let decision = decide(referenced(), false, &key(), &Facts::default());
        assert_eq!(decision.pseudonym, Some(by_reference()));
        assert!(decision.unregistered);
        assert_eq!(decision.link, Some(p1()), "noted for the registration");
        // Once linked, later events take the link and note nothing.
        let mut facts = Facts::default();
        link(&mut facts, registered("anna@example.org"), true);
        let decision = decide(referenced(), false, &key(), &facts);
        assert_eq!(decision.pseudonym, Some(registered("anna@example.org")));
        assert!(!decision.unregistered);
        assert_eq!(decision.link, None);
    }

    #[test]
    fn the_registration_replaces_a_provisional_pseudonym_where_its_rows_are() {
        for (before, at) in [(false, RowsAt::Round), (true, RowsAt::Lake)] {
            let mut facts = Facts::default();
            link(&mut facts, by_reference(), before);
            let decision = decide(registration("anna@example.org"), false, &key(), &facts);
            assert_eq!(decision.pseudonym, Some(registered("anna@example.org")));
            assert_eq!(decision.relink, Some((by_reference(), at)));
            assert_eq!(decision.verdict, Verdict::Row);
        }
    }

    #[test]
    fn registered_again_a_person_keeps_the_first_pseudonym() {
        let mut facts = Facts::default();
        link(&mut facts, registered("anna@example.org"), true);
        let decision = decide(registration("anna@work.example"), false, &key(), &facts);
        assert_eq!(decision.pseudonym, Some(registered("anna@example.org")));
        assert_eq!(decision.relink, None);
    }

    #[test]
    fn withdrawals_withdraw_and_drop_what_comes_after() {
        let decision = decide(
            registration("anna@example.org"),
            true,
            &key(),
            &Facts::default(),
        );
        assert_eq!(decision.verdict, Verdict::Withdrawal);
        assert_eq!(decision.pseudonym, Some(registered("anna@example.org")));

        let mut facts = Facts::default();
        facts.withdrawn.insert(by_reference());
        let decision = decide(referenced(), false, &key(), &facts);
        assert_eq!(decision.verdict, Verdict::Dropped);

        // Registered after withdrawing elsewhere: the provisional pseudonym goes too.
        let mut facts = Facts::default();
        link(&mut facts, by_reference(), true);
        facts.withdrawn.insert(registered("anna@example.org"));
        let decision = decide(registration("anna@example.org"), false, &key(), &facts);
        assert_eq!(decision.verdict, Verdict::Dropped);
        assert_eq!(decision.also_withdrawn, Some(by_reference()));
        assert_eq!(decision.relink, None);

        // A provisional pseudonym already withdrawn stays the person's.
        let mut facts = Facts::default();
        link(&mut facts, by_reference(), true);
        facts.withdrawn.insert(by_reference());
        let decision = decide(registration("anna@example.org"), false, &key(), &facts);
        assert_eq!(decision.pseudonym, Some(by_reference()));
        assert_eq!(decision.verdict, Verdict::Dropped);
    }

    #[test]
    fn events_about_no_person_always_count() {
        let mut facts = Facts::default();
        facts.withdrawn.insert(by_reference());
        let decision = decide(Subject::Nobody, false, &key(), &facts);
        assert_eq!((decision.verdict, decision.pseudonym), (Verdict::Row, None));
    }
}
