// The people of the workspace, as the server's directory knows them (GET /api/people: the name
// each person signed in with), and `@` mentions: typing `@` in a reply, a comment, an issue's
// description or a note's body offers them, and picking one inserts `@<sub>`, which the server
// turns into a notification for that person.

import { h } from './ui.js'
import { currentUser, learnDirectory } from './sync.js'

let directory = []
let fetched = 0

/** Authorization for the server's HTTP API, when the user has a token. */
export function authHeaders () {
  const token = currentUser()?.token
  return token ? { authorization: `Bearer ${token}` } : {}
}

/** The directory, fetched again when older than `maxAge` ms. */
export async function people ({ maxAge = 30_000 } = {}) {
  if (Date.now() - fetched < maxAge) return directory
  fetched = Date.now()
  try {
    const res = await fetch('./api/people', { headers: { accept: 'application/json', ...authHeaders() } })
    if (res.ok) {
      directory = (await res.json()).people || []
      learnDirectory(directory)
    }
  } catch { /* offline: keep what we had */ }
  return directory
}

/** The people whose sub or name starts with (or contains a word starting with) `prefix`. */
export function matching (list, prefix) {
  const p = prefix.toLowerCase()
  const me = currentUser()?.sub
  return list
    .filter(person => person.sub !== me)
    .filter(person => person.sub.toLowerCase().startsWith(p) ||
      person.name.toLowerCase().split(/\s+/).some(w => w.startsWith(p)))
    .slice(0, 6)
}

/** The `@word` that ends `before` (the text before the caret), or null. */
export function mentionAt (before) {
  const m = /(^|[^A-Za-z0-9._~@-])@([A-Za-z0-9._~-]{0,64})$/.exec(before)
  return m ? m[2] : null
}

/**
 * A listbox of people under `anchor`. `pick(person)` inserts the mention. Returns
 * { show(prefix), hide(), key(event) -> handled }.
 */
function suggestions (anchor, pick) {
  const box = h('ul', { class: 'mention-list', role: 'listbox', 'aria-label': 'People', hidden: true, 'data-testid': 'mention-list' })
  let shown = []
  let active = 0
  const render = () => {
    box.replaceChildren(...shown.map((person, i) => h('li', {
      role: 'option',
      class: 'mention-option',
      'aria-selected': String(i === active),
      onmousedown: e => { e.preventDefault(); pick(person); hide() }
    }, h('span', { class: 'mention-dot', style: { background: person.color } }), person.name, h('span', { class: 'muted' }, ` @${person.sub}`))))
  }
  const hide = () => { box.hidden = true; shown = [] }
  return {
    async show (prefix) {
      // Placed on first use: the field may not be in the page yet when it is made mentionable.
      if (!box.isConnected) anchor.after(box)
      shown = matching(await people(), prefix)
      // Someone who signed in since the last look: ask again (at most once a second).
      if (shown.length === 0) shown = matching(await people({ maxAge: 1000 }), prefix)
      active = 0
      box.hidden = shown.length === 0
      render()
    },
    hide,
    key (e) {
      if (box.hidden || shown.length === 0) return false
      if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
        active = (active + (e.key === 'ArrowDown' ? 1 : shown.length - 1)) % shown.length
        render()
      } else if (e.key === 'Enter' || e.key === 'Tab') {
        pick(shown[active])
        hide()
      } else if (e.key === 'Escape') {
        hide()
      } else {
        return false
      }
      e.preventDefault()
      return true
    }
  }
}

/** Offers people when `@` is typed in a textarea or input. */
export function mentionable (field) {
  const list = suggestions(field, person => {
    const caret = field.selectionStart
    const before = field.value.slice(0, caret)
    const word = mentionAt(before) ?? ''
    const start = caret - word.length
    field.setRangeText(`${person.sub} `, start, caret, 'end')
    field.dispatchEvent(new Event('input', { bubbles: true }))
    field.focus()
  })
  field.addEventListener('keydown', e => { list.key(e) }, true)
  field.addEventListener('input', () => {
    const word = mentionAt(field.value.slice(0, field.selectionStart))
    if (word === null) list.hide()
    else list.show(word)
  })
  field.addEventListener('blur', () => setTimeout(list.hide, 150))
  return field
}

/** The same for a ProseMirror view: call on every update and from its keydown handler. */
export function mentionableEditor (view, anchor) {
  const list = suggestions(anchor, person => {
    const { $from } = view.state.selection
    const word = mentionAt($from.parent.textBetween(0, $from.parentOffset, null, '\ufffc')) ?? ''
    view.dispatch(view.state.tr.insertText(`${person.sub} `, $from.pos - word.length, $from.pos))
    view.focus()
  })
  return {
    update () {
      const { $from, empty } = view.state.selection
      const word = empty ? mentionAt($from.parent.textBetween(0, $from.parentOffset, null, '\ufffc')) : null
      if (word === null) list.hide()
      else list.show(word)
    },
    key: e => list.key(e),
    hide: list.hide
  }
}
