// Pieces shared by the three screens: the list + detail layout, the item list from an index
// document, and keeping an index summary in step with the document it describes.

import { h, ago, announce } from './ui.js'
import { setFocus, summaries, markMissing } from './sync.js'
import { authHeaders } from './people.js'

export const TOUCH = Symbol('touch')

/** The list + detail layout; `list` is an indexList (its search box above its items). */
export function splitLayout ({ title, actions, list, pane, back }) {
  // On a phone an open item takes the screen; `back` (the list's address) leads back to the list.
  return h('div', { class: back ? 'split split-open' : 'split' },
    h('aside', { class: 'sidebar', 'aria-labelledby': 'sidebar-title' },
      h('div', { class: 'sidebar-head' }, h('h1', { id: 'sidebar-title', class: 'sidebar-title' }, title), actions),
      list.search, list.el),
    back ? h('div', { class: 'pane-wrap' }, h('a', { class: 'back-link phone-only', href: back }, `← All ${title.toLowerCase()}`), pane) : pane)
}

/** A search box: calls `onInput(query)` as the user types. */
export function searchBox (label, onInput) {
  const input = h('input', {
    type: 'search',
    class: 'input search-input',
    placeholder: `Search ${label.toLowerCase()}…`,
    'aria-label': `Search ${label.toLowerCase()}`,
    'data-testid': 'search',
    oninput: () => onInput(input.value.trim().toLowerCase())
  })
  return input
}

/**
 * Renders the rows of index maps as links and keeps them live.
 * sources: [{ doc, map, href(row), private? }]. Returns { el, destroy }.
 */
export function indexList ({ sources, selected, label, empty, untitled, extra }) {
  const ul = h('ul', { class: 'item-list', 'aria-label': label })
  let query = ''
  const search = searchBox(label.replace(/^All /, ''), q => { query = q; render() })
  const render = () => {
    const rows = []
    for (const source of sources) {
      for (const row of summaries(source.doc, source.map)) rows.push({ ...row, href: source.href(row), isPrivate: !!source.private })
    }
    rows.sort((a, b) => (b.updated || 0) - (a.updated || 0))
    const found = query ? rows.filter(row => (row.title?.trim() || untitled).toLowerCase().includes(query)) : rows
    if (found.length === 0) {
      ul.replaceChildren(h('li', { class: 'empty-note' }, rows.length === 0 ? empty : `Nothing matches “${query}”.`))
      return
    }
    ul.replaceChildren(...found.map(row => {
      const current = selected && row.id === selected.id && row.isPrivate === !!selected.private
      return h('li', {},
        h('a', { href: row.href, class: 'item-link', 'aria-current': current ? 'page' : false, dataset: { id: row.id } },
          h('span', { class: 'item-title' },
            row.isPrivate ? h('span', { class: 'lock', title: 'Private', 'aria-label': 'Private note', role: 'img' }, lockIcon()) : null,
            h('span', { class: 'item-text' }, row.title?.trim() ? row.title : untitled)),
          h('span', { class: 'item-sub' }, extra ? extra(row) : null, row.updated ? ago(row.updated) : '')))
    }))
  }
  const observers = sources.map(source => {
    const map = source.doc.getMap(source.map)
    const fn = () => render()
    map.observeDeep(fn)
    return () => map.unobserveDeep(fn)
  })
  render()
  const timer = setInterval(render, 60_000) // keeps "3 minutes ago" fresh
  return { el: ul, search, destroy: () => { observers.forEach(off => off()); clearInterval(timer) } }
}

export function lockIcon () {
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg')
  svg.setAttribute('viewBox', '0 0 16 16')
  svg.setAttribute('width', '12')
  svg.setAttribute('height', '12')
  svg.setAttribute('aria-hidden', 'true')
  svg.innerHTML = '<path fill="currentColor" d="M4 7V5a4 4 0 1 1 8 0v2h.5A1.5 1.5 0 0 1 14 8.5v5a1.5 1.5 0 0 1-1.5 1.5h-9A1.5 1.5 0 0 1 2 13.5v-5A1.5 1.5 0 0 1 3.5 7H4Zm2 0h4V5a2 2 0 1 0-4 0v2Z"/>'
  return svg
}

/**
 * Keeps `meta.updated` and the index summary in step with local edits of a document: `summary()`
 * gives the fields to write (title, status, ...). Local edits only (remote ones were written by
 * their author), throttled so typing does not write on every key.
 */
export function trackUpdates (entry, write, { every = 2000 } = {}) {
  let timer = null
  const flush = () => {
    timer = null
    // A deleted (or never existing) document must not come back into the index.
    if (!entry.refused && !entry.missing && !entry.deleted) write(Date.now())
  }
  const onUpdate = (_update, origin, _doc, tr) => {
    if (origin === TOUCH || !tr.local) return
    if (!timer) timer = setTimeout(flush, every)
  }
  entry.doc.on('update', onUpdate)
  return () => {
    entry.doc.off('update', onUpdate)
    if (timer) { clearTimeout(timer); flush() }
  }
}

/** Focuses a document for the top bar and returns the cleanup to refocus on `fallback`. */
export function focusDoc (entry) {
  setFocus(entry)
}

/** Renders a "Loading…"-free empty pane. */
export function emptyPane (icon, title, text, action) {
  return h('section', { class: 'pane pane-empty', 'aria-label': title },
    h('div', { class: 'empty-state' }, h('div', { class: 'empty-icon', 'aria-hidden': 'true' }, icon),
      h('h2', {}, title), h('p', { class: 'muted' }, text), action))
}

/**
 * Keeps a document's view inert until the document is known to exist (`exists()`: it has
 * content locally or once in sync with the server), and marks it missing when the server's copy
 * is empty too: a mistyped link, a deleted document or someone else's private note must not open
 * as a blank page that takes edits. Returns the cleanup.
 */
export function guardExistence (entry, exists, el) {
  if (exists()) return () => {}
  el.inert = true
  el.classList.add('checking')
  const check = () => {
    if (exists()) {
      el.inert = false
      el.classList.remove('checking')
      entry.missing = false
      stop()
    } else if (entry.synced) {
      markMissing(entry)
    }
  }
  const onSync = synced => { if (synced) check() }
  const stop = () => { entry.provider.off('sync', onSync); entry.doc.off('update', check) }
  entry.provider.on('sync', onSync)
  entry.doc.on('update', check)
  check()
  return stop
}

/**
 * A button that asks before it acts: the first press turns it into "<question> [confirm]
 * [Cancel]" in place. `run()` may return a promise; an error it throws is shown.
 */
export function confirmButton ({ label, question, confirm, run, testid }) {
  const wrap = h('span', { class: 'confirm' })
  const idle = () => wrap.replaceChildren(h('button', {
    type: 'button',
    class: 'btn btn-ghost btn-s',
    'data-testid': testid,
    onclick: () => asking()
  }, label))
  const asking = (error = '') => {
    const yes = h('button', {
      type: 'button',
      class: 'btn btn-danger btn-s',
      onclick: async () => {
        yes.disabled = true
        try { await run() } catch (err) { asking(err.message); return }
        if (wrap.isConnected) idle()
      }
    }, confirm)
    wrap.replaceChildren(h('span', { class: 'confirm-question', role: 'alert' }, error || question), yes,
      h('button', { type: 'button', class: 'btn btn-s', onclick: () => { idle(); wrap.querySelector('button')?.focus() } }, 'Cancel'))
    yes.focus()
  }
  idle()
  return wrap
}

/** Deletes a document through the REST API (`DELETE /api/<path>`), for everyone. */
export async function deleteDocument (path, noun) {
  let res
  try {
    res = await fetch(`./api/${path}`, { method: 'DELETE', headers: { accept: 'application/json', ...authHeaders() } })
  } catch {
    throw new Error(`Deleting a ${noun} needs a connection to the server.`)
  }
  if (res.ok || res.status === 404) {
    announce(`${noun[0].toUpperCase() + noun.slice(1)} deleted`)
    return
  }
  let message = `The server refused (HTTP ${res.status}).`
  try { message = (await res.json()).message || message } catch { /* keep the status */ }
  throw new Error(`Not deleted: ${message}`)
}
