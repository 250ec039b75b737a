// Two-way binding between an <input>/<textarea> and a Y.Text.
// Local input becomes the smallest delete + insert (common prefix and suffix kept), so concurrent
// edits elsewhere in the same field merge character by character. Remote changes rewrite the value
// and move the caret/selection through the remote delta, so the local caret stays where it was in
// the text around it.

/** The minimal change turning `a` into `b`: { index, remove, insert }. */
export function diff (a, b) {
  let start = 0
  const max = Math.min(a.length, b.length)
  while (start < max && a.charCodeAt(start) === b.charCodeAt(start)) start++
  let endA = a.length
  let endB = b.length
  while (endA > start && endB > start && a.charCodeAt(endA - 1) === b.charCodeAt(endB - 1)) {
    endA--
    endB--
  }
  // Never split a surrogate pair.
  if (start > 0 && isHighSurrogate(a.charCodeAt(start - 1))) start--
  return { index: start, remove: endA - start, insert: b.slice(start, endB) }
}

function isHighSurrogate (code) {
  return code >= 0xd800 && code <= 0xdbff
}

/** Applies the minimal change from the text's content to `value` in one transaction. */
export function setText (ytext, value, origin = null) {
  const { index, remove, insert } = diff(ytext.toString(), value)
  if (remove === 0 && insert === '') return
  ytext.doc.transact(() => {
    if (remove > 0) ytext.delete(index, remove)
    if (insert) ytext.insert(index, insert)
  }, origin)
}

/** Maps a position of the old text through a Yjs text delta (assoc > 0: stay after an insert at it). */
function mapPosition (pos, delta, assoc) {
  let oldIndex = 0
  let shift = 0
  for (const op of delta) {
    if (oldIndex > pos) break
    if (op.retain !== undefined) {
      oldIndex += op.retain
    } else if (op.insert !== undefined) {
      const len = typeof op.insert === 'string' ? op.insert.length : 1
      if (oldIndex < pos || (oldIndex === pos && assoc > 0)) shift += len
    } else if (op.delete !== undefined) {
      if (oldIndex < pos) shift -= Math.min(op.delete, pos - oldIndex)
      oldIndex += op.delete
    }
  }
  return pos + shift
}

/**
 * Binds `el` to `ytext`. `onLocalInput` runs after each local edit (e.g. to announce typing).
 * Returns a function that undoes the binding.
 */
export function bindText (el, ytext, { onLocalInput } = {}) {
  const origin = { binding: el }
  el.value = ytext.toString()
  const onInput = () => {
    setText(ytext, el.value, origin)
    onLocalInput?.()
  }
  const observer = (event, transaction) => {
    if (transaction.origin === origin) return
    const value = ytext.toString()
    if (value === el.value) return
    if (document.activeElement === el) {
      const delta = event.delta
      const start = mapPosition(el.selectionStart ?? 0, delta, -1)
      const end = mapPosition(el.selectionEnd ?? 0, delta, -1)
      const direction = el.selectionDirection
      el.value = value
      el.setSelectionRange(start, Math.max(start, end), direction || 'none')
    } else {
      el.value = value
    }
    el.dispatchEvent(new CustomEvent('remote-change'))
  }
  el.addEventListener('input', onInput)
  ytext.observe(observer)
  return () => {
    el.removeEventListener('input', onInput)
    ytext.unobserve(observer)
  }
}
