use super::*;
use crate::issue::Issue;
use crate::note::Note;

fn entry(id: &str, text: &str) -> Entry {
    Entry {
        id: id.into(),
        author: "whoever-the-client-wrote".into(),
        text: text.into(),
        time: 1,
        edited: false,
    }
}

fn issue(title: &str, status: &str, assignees: &[&str], comments: Vec<Entry>) -> Typed {
    Typed::Issue(Issue {
        title: title.into(),
        status: status.into(),
        created: 1,
        assignees: assignees.iter().map(|s| s.to_string()).collect(),
        comments,
        ..Issue::default()
    })
}

fn note(body: &str, replies: Vec<Entry>) -> Typed {
    Typed::Note(Note {
        title: "Plan".into(),
        body: body.into(),
        created: 1,
        replies,
        ..Note::default()
    })
}

fn everyone(_: &str) -> bool {
    true
}

fn derive(actor: &str, creator: &str, before: &Typed, after: &Typed) -> Vec<(String, NoticeKind)> {
    let context = Context {
        actor,
        creator: Some(creator),
        may_read: &everyone,
    };
    notices(&context, before, after)
        .into_iter()
        .map(|n| (n.recipient, n.kind))
        .collect()
}

fn pairs(list: &[(&str, NoticeKind)]) -> Vec<(String, NoticeKind)> {
    list.iter().map(|(s, k)| (s.to_string(), *k)).collect()
}

#[test]
fn mentions_follow_the_id_rules() {
    fn found(t: &str) -> Vec<String> {
        mentions(t).into_iter().map(str::to_string).collect()
    }
    assert_eq!(found("hi @ada and @bob."), ["ada", "bob"]);
    assert_eq!(found("@ada.lovelace, @u-42~x"), ["ada.lovelace", "u-42~x"]);
    assert!(found("mail ada@example.com").is_empty());
    assert!(
        found("@@ada @ @.x @-x").is_empty(),
        "{:?}",
        found("@@ada @ @.x @-x")
    );
    assert_eq!(found("(@ada)"), ["ada"]);
    let longest = "a".repeat(MENTION_LEN_MAX_BYTES);
    assert!(found(&format!("@{longest}a")).is_empty());
    assert_eq!(found(&format!("@{longest}")), vec![longest]);
    assert_eq!(found("@ada @ada"), ["ada"]);
}

#[test]
fn adding_an_assignee_notifies_only_the_new_one_and_never_the_actor() {
    let before = issue("Crash", "open", &["bob"], vec![]);
    let after = issue("Crash", "open", &["bob", "carol", "ada"], vec![]);
    assert_eq!(
        derive("ada", "ada", &before, &after),
        pairs(&[("carol", NoticeKind::Assigned)])
    );
}

#[test]
fn a_new_issue_notifies_its_assignees_but_is_no_status_change() {
    let blank = Typed::Issue(Issue::default());
    let after = issue("Crash", "in_progress", &["bob"], vec![]);
    assert_eq!(
        derive("ada", "ada", &blank, &after),
        pairs(&[("bob", NoticeKind::Assigned)])
    );
}

#[test]
fn a_status_change_tells_the_creator_and_the_assignees() {
    let before = issue("Crash", "open", &["bob", "carol"], vec![]);
    let after = issue("Crash", "done", &["bob", "carol"], vec![]);
    let context = Context {
        actor: "bob",
        creator: Some("ada"),
        may_read: &everyone,
    };
    let got = notices(&context, &before, &after);
    let who: Vec<&str> = got.iter().map(|n| n.recipient.as_str()).collect();
    assert_eq!(who, ["ada", "carol"]);
    assert!(got
        .iter()
        .all(|n| n.kind == NoticeKind::StatusChanged && n.status.as_deref() == Some("done")));
    assert_eq!(
        sentence(got[0].kind, "Bob", &got[0].title, got[0].status.as_deref()),
        "Bob moved “Crash” to done"
    );
}

#[test]
fn a_comment_tells_creator_and_assignees_once_each_and_a_mention_wins() {
    let before = issue("Crash", "open", &["bob", "carol"], vec![]);
    let after = issue(
        "Crash",
        "open",
        &["bob", "carol"],
        vec![entry("c1", "@carol can you look? cc @dave")],
    );
    assert_eq!(
        derive("bob", "ada", &before, &after),
        pairs(&[
            ("carol", NoticeKind::Mentioned),
            ("dave", NoticeKind::Mentioned),
            ("ada", NoticeKind::Commented),
        ])
    );
}

#[test]
fn the_creator_comes_from_the_record_not_from_the_document() {
    // The issue says `author: mallory`; the record says ada created it.
    let mut before = issue("Crash", "open", &[], vec![]);
    if let Typed::Issue(i) = &mut before {
        i.author = "mallory".into();
    }
    let mut after = issue("Crash", "open", &[], vec![entry("c1", "me too")]);
    if let Typed::Issue(i) = &mut after {
        i.author = "mallory".into();
    }
    assert_eq!(
        derive("bob", "ada", &before, &after),
        pairs(&[("ada", NoticeKind::Commented)])
    );
}

#[test]
fn a_reply_tells_the_notes_creator_and_editing_around_a_mention_does_not_repeat_it() {
    let before = note("see @bob", vec![]);
    let replied = note("see @bob", vec![entry("r1", "agreed")]);
    assert_eq!(
        derive("carol", "ada", &before, &replied),
        pairs(&[("ada", NoticeKind::Replied)])
    );
    let edited = note(
        "please see @bob today, and @carol",
        vec![entry("r1", "agreed")],
    );
    assert_eq!(
        derive("ada", "ada", &replied, &edited),
        pairs(&[("carol", NoticeKind::Mentioned)])
    );
    let reply_edited = note(
        "please see @bob today, and @carol",
        vec![entry("r1", "agreed, @dave")],
    );
    assert_eq!(
        derive("carol", "ada", &edited, &reply_edited),
        pairs(&[("dave", NoticeKind::Mentioned)])
    );
}

#[test]
fn nobody_who_may_not_read_the_document_is_told() {
    let before = note("", vec![]);
    let after = note("@bob look at my private plan", vec![]);
    let only_ada = |sub: &str| sub == "ada";
    let context = Context {
        actor: "ada",
        creator: Some("ada"),
        may_read: &only_ada,
    };
    assert!(notices(&context, &before, &after).is_empty());
}

#[test]
fn a_blank_reading_notifies_nobody() {
    let before = issue("Crash", "open", &[], vec![]);
    assert!(derive("ada", "ada", &before, &Typed::Issue(Issue::default())).is_empty());
}
