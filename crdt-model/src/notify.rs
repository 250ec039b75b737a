//! Who a typed change concerns: the notifications one change of a note or an issue addresses to
//! people (`assigned`, `mentioned`, `replied`, `commented`, `status_changed`).
//!
//! Like the change feed, notifications are derived by comparing two readings of the document, so
//! an edit from any client (either websocket dialect, HTTP sync, REST) notifies the same people.
//! Who *made* the change and who *created* the document come from the caller, which takes them
//! from the server's own records; nothing a client wrote into the document (`meta.author`, a
//! reply's `author`) decides who is told or in whose name.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::thread::Entry;
use crate::typed::Typed;

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// The recipient was added to an issue's assignees.
    Assigned,
    /// `@<recipient>` newly appears in a note body, an issue description, a reply or a comment.
    Mentioned,
    /// Someone replied on the recipient's note.
    Replied,
    /// Someone commented on an issue the recipient created or is assigned to.
    Commented,
    /// The status of an issue the recipient created or is assigned to changed.
    StatusChanged,
}

impl NoticeKind {
    pub fn name(self) -> &'static str {
        match self {
            NoticeKind::Assigned => "assigned",
            NoticeKind::Mentioned => "mentioned",
            NoticeKind::Replied => "replied",
            NoticeKind::Commented => "commented",
            NoticeKind::StatusChanged => "status_changed",
        }
    }

    pub fn from_name(name: &str) -> Option<NoticeKind> {
        [
            NoticeKind::Assigned,
            NoticeKind::Mentioned,
            NoticeKind::Replied,
            NoticeKind::Commented,
            NoticeKind::StatusChanged,
        ]
        .into_iter()
        .find(|k| k.name() == name)
    }
}

/// One notification for one person, before it is stamped with an id, a document and a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub recipient: String,
    pub kind: NoticeKind,
    /// The reply or comment it is about, if any.
    pub item: Option<String>,
    /// The document's title when it was made (the sentence quotes it).
    pub title: String,
    /// For `status_changed`: the new status.
    pub status: Option<String>,
}

/// What the derivation needs to know beyond the two readings, from the server's records.
pub struct Context<'a> {
    /// The `sub` whose update made the change; never notified of it.
    pub actor: &'a str,
    /// The `sub` whose update created the document (the storage's authorship record).
    pub creator: Option<&'a str>,
    /// Whether `sub` may read this document at all (a private note reaches only its owner).
    /// Reading is checked again when the notification is shown.
    pub may_read: &'a dyn Fn(&str) -> bool,
}

/// The part of a document one notification is about; a person gets one notification per part,
/// however many rules match it (a mention in a new comment is `mentioned`, not also `commented`).
#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum Part {
    Assignees,
    Status,
    Text,
    Entry(String),
}

/// The notifications the change from `before` to `after` makes, at most one per person and part,
/// in a stable order.
pub fn notices(context: &Context<'_>, before: &Typed, after: &Typed) -> Vec<Notice> {
    if after.is_blank() {
        return Vec::new();
    }
    let title = after.title().to_string();
    let mut out: Vec<(Part, Notice)> = Vec::new();
    let mut add = |part: Part, recipient: &str, kind: NoticeKind, item: Option<&str>| {
        if recipient == context.actor
            || recipient.is_empty()
            || !(context.may_read)(recipient)
            || out
                .iter()
                .any(|(p, n)| *p == part && n.recipient == recipient)
        {
            return;
        }
        out.push((
            part,
            Notice {
                recipient: recipient.to_string(),
                kind,
                item: item.map(str::to_string),
                title: title.clone(),
                status: None,
            },
        ));
    };
    let creator = context.creator.unwrap_or_default();
    match (before, after) {
        (Typed::Note(b), Typed::Note(a)) => {
            for sub in new_mentions(Some(&b.body), &a.body) {
                add(Part::Text, sub, NoticeKind::Mentioned, None);
            }
            for (entry, old) in entries(&b.replies, &a.replies) {
                for sub in new_mentions(old, &entry.text) {
                    add(
                        Part::Entry(entry.id.clone()),
                        sub,
                        NoticeKind::Mentioned,
                        Some(&entry.id),
                    );
                }
                if old.is_none() {
                    add(
                        Part::Entry(entry.id.clone()),
                        creator,
                        NoticeKind::Replied,
                        Some(&entry.id),
                    );
                }
            }
        }
        (Typed::Issue(b), Typed::Issue(a)) => {
            for sub in a.assignees.iter().filter(|s| !b.assignees.contains(s)) {
                add(Part::Assignees, sub, NoticeKind::Assigned, None);
            }
            for sub in new_mentions(Some(&b.description), &a.description) {
                add(Part::Text, sub, NoticeKind::Mentioned, None);
            }
            let followers: Vec<&str> = std::iter::once(creator)
                .chain(a.assignees.iter().map(String::as_str))
                .collect();
            for (entry, old) in entries(&b.comments, &a.comments) {
                for sub in new_mentions(old, &entry.text) {
                    add(
                        Part::Entry(entry.id.clone()),
                        sub,
                        NoticeKind::Mentioned,
                        Some(&entry.id),
                    );
                }
                if old.is_none() {
                    for sub in &followers {
                        add(
                            Part::Entry(entry.id.clone()),
                            sub,
                            NoticeKind::Commented,
                            Some(&entry.id),
                        );
                    }
                }
            }
            // A new issue is not a status change, whatever status it starts in.
            if a.status != b.status && !before.is_blank() {
                for sub in &followers {
                    add(Part::Status, sub, NoticeKind::StatusChanged, None);
                }
                for (part, notice) in &mut out {
                    if *part == Part::Status {
                        notice.status = Some(a.status.clone());
                    }
                }
            }
        }
        _ => {}
    }
    out.into_iter().map(|(_, n)| n).collect()
}

/// Each entry of `after` that is new or whose text changed, with its text before (`None`: new).
fn entries<'a>(
    before: &'a [Entry],
    after: &'a [Entry],
) -> impl Iterator<Item = (&'a Entry, Option<&'a str>)> {
    after
        .iter()
        .filter_map(move |e| match before.iter().find(|o| o.id == e.id) {
            None => Some((e, None)),
            Some(o) if o.text != e.text => Some((e, Some(o.text.as_str()))),
            Some(_) => None,
        })
}

/// The subs mentioned in `after` that `before` did not mention: editing around a mention does
/// not notify again.
fn new_mentions<'a>(before: Option<&str>, after: &'a str) -> Vec<&'a str> {
    let old = before.map(mentions).unwrap_or_default();
    mentions(after)
        .into_iter()
        .filter(|m| !old.contains(m))
        .collect()
}

/// Longest mention, in bytes: the id rule's 64.
pub const MENTION_LEN_MAX_BYTES: usize = 64;

fn is_id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'-')
}

/// Every `@<sub>` in `text`, where `<sub>` follows the id rules (1 to 64 of `A-Z a-z 0-9 . _ ~ -`,
/// starting with a letter or digit). An `@` inside a word (`ada@example.com`) is not a mention,
/// and a sentence's closing `.` is not part of one (`thanks @ada.`).
pub fn mentions(text: &str) -> BTreeSet<&str> {
    let bytes = text.as_bytes();
    let mut out = BTreeSet::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'@' || (i > 0 && (is_id_byte(bytes[i - 1]) || bytes[i - 1] == b'@')) {
            i += 1;
            continue;
        }
        let start = i + 1;
        let mut end = start;
        while end < bytes.len() && is_id_byte(bytes[end]) {
            end += 1;
        }
        i = end;
        let mut word = &text[start..end];
        word = word.trim_end_matches('.');
        let starts_well = word
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric());
        if starts_well && word.len() <= MENTION_LEN_MAX_BYTES {
            out.insert(word);
        }
    }
    out
}

/// The sentence a person reads: "Ada assigned you to “Crash on save”".
pub fn sentence(kind: NoticeKind, by: &str, title: &str, status: Option<&str>) -> String {
    let title = if title.is_empty() { "Untitled" } else { title };
    match kind {
        NoticeKind::Assigned => format!("{by} assigned you to “{title}”"),
        NoticeKind::Mentioned => format!("{by} mentioned you in “{title}”"),
        NoticeKind::Replied => format!("{by} replied to “{title}”"),
        NoticeKind::Commented => format!("{by} commented on “{title}”"),
        NoticeKind::StatusChanged => match status {
            Some(s) => format!("{by} moved “{title}” to {}", s.replace('_', " ")),
            None => format!("{by} changed the status of “{title}”"),
        },
    }
}

#[cfg(test)]
mod tests;
