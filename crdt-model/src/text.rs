//! Minimal edits: turning a text into another by replacing only the characters that differ, so
//! that a concurrent edit elsewhere in the same text survives the merge; and lists of strings.

use yrs::{GetString, OffsetKind, Text, TextRef, TransactionMut};

/// Replaces the content of `text` with `new`, deleting and inserting only the middle part that
/// differs (the common prefix and suffix are kept, at character boundaries).
pub fn replace_minimal(txn: &mut TransactionMut, text: &TextRef, new: &str) {
    let old = text.get_string(txn);
    if old == new {
        return;
    }
    let prefix: usize = old
        .chars()
        .zip(new.chars())
        .take_while(|(a, b)| a == b)
        .map(|(a, _)| a.len_utf8())
        .sum();
    let suffix: usize = old[prefix..]
        .chars()
        .rev()
        .zip(new[prefix..].chars().rev())
        .take_while(|(a, b)| a == b)
        .map(|(a, _)| a.len_utf8())
        .sum();
    let removed = &old[prefix..old.len() - suffix];
    let inserted = &new[prefix..new.len() - suffix];
    // yrs indexes text in the document's offset kind.
    let kind = txn.doc().offset_kind();
    let measure = |s: &str| -> u32 {
        let n = match kind {
            OffsetKind::Bytes => s.len(),
            OffsetKind::Utf16 => s.encode_utf16().count(),
        };
        u32::try_from(n).unwrap_or(u32::MAX)
    };
    let at = measure(&old[..prefix]);
    if !removed.is_empty() {
        text.remove_range(txn, at, measure(removed));
    }
    if !inserted.is_empty() {
        text.insert(txn, at, inserted);
    }
}

/// Makes a `Y.Array` of strings equal to `new`, keeping the common prefix (lists of tags,
/// labels and assignees are short, so the rest is replaced).
pub fn replace_strings(txn: &mut TransactionMut, array: &yrs::ArrayRef, new: &[String]) {
    use yrs::{Any, Array, Out};
    let current: Vec<Option<String>> = array
        .iter(txn)
        .map(|v| match v {
            Out::Any(Any::String(s)) => Some(s.to_string()),
            _ => None,
        })
        .collect();
    let keep = current
        .iter()
        .zip(new)
        .take_while(|(a, b)| a.as_deref() == Some(b.as_str()))
        .count();
    if keep == current.len() && keep == new.len() {
        return;
    }
    let keep_u32 = u32::try_from(keep).unwrap_or(u32::MAX);
    let len = array.len(txn);
    if len > keep_u32 {
        array.remove_range(txn, keep_u32, len - keep_u32);
    }
    for (i, item) in new[keep..].iter().enumerate() {
        let at = keep_u32.saturating_add(u32::try_from(i).unwrap_or(u32::MAX));
        array.insert(txn, at, item.as_str());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::updates::decoder::Decode;
    use yrs::{Doc, ReadTxn, Transact, Update};

    fn sync(from: &Doc, to: &Doc) {
        let sv = to.transact().state_vector();
        let u = from.transact().encode_state_as_update_v1(&sv);
        to.transact_mut()
            .apply_update(Update::decode_v1(&u).expect("decodes"))
            .expect("applies");
    }

    // Two people edit different parts of the same title at once; after merging, both edits are
    // there, because each replaced only what it changed.
    #[test]
    fn concurrent_edits_elsewhere_survive() {
        let a = Doc::with_client_id(1);
        let b = Doc::with_client_id(2);
        let ta = a.get_or_insert_text("title");
        let tb = b.get_or_insert_text("title");
        replace_minimal(&mut a.transact_mut(), &ta, "Quarterly plan");
        sync(&a, &b);
        replace_minimal(&mut a.transact_mut(), &ta, "Quarterly plan (draft)");
        replace_minimal(&mut b.transact_mut(), &tb, "Yearly plan");
        sync(&a, &b);
        sync(&b, &a);
        let ra = ta.get_string(&a.transact());
        assert_eq!(ra, tb.get_string(&b.transact()));
        assert_eq!(ra, "Yearly plan (draft)");
    }

    #[test]
    fn unicode_boundaries() {
        for kind in [OffsetKind::Bytes, OffsetKind::Utf16] {
            let doc = Doc::with_options(yrs::Options {
                offset_kind: kind,
                ..Default::default()
            });
            let t = doc.get_or_insert_text("t");
            for next in ["héllo 👋", "héllo 🌍 world", "", "ünïcödé", "ünï cödé"] {
                replace_minimal(&mut doc.transact_mut(), &t, next);
                assert_eq!(t.get_string(&doc.transact()), next);
            }
        }
    }
}
