// Pieces shared by the three screens: the list + detail layout, the item list from an index
// document, and keeping an index summary in step with the document it describes.

import { h, ago } from './ui.js'
import { setFocus, summaries } from './sync.js'

export const TOUCH = Symbol('touch')

/** The list + detail layout. */
export function splitLayout ({ title, actions, list, pane }) {
  return h('div', { class: 'split' },
    h('aside', { class: 'sidebar', 'aria-labelledby': 'sidebar-title' },
      h('div', { class: 'sidebar-head' }, h('h1', { id: 'sidebar-title', class: 'sidebar-title' }, title), actions),
      list),
    pane)
}

/**
 * Renders the rows of index maps as links and keeps them live.
 * sources: [{ doc, map, href(row), private? }]. Returns { el, destroy }.
 */
export function indexList ({ sources, selected, label, empty, untitled, extra }) {
  const ul = h('ul', { class: 'item-list', 'aria-label': label })
  const render = () => {
    const rows = []
    for (const source of sources) {
      for (const row of summaries(source.doc, source.map)) rows.push({ ...row, href: source.href(row), isPrivate: !!source.private })
    }
    rows.sort((a, b) => (b.updated || 0) - (a.updated || 0))
    if (rows.length === 0) {
      ul.replaceChildren(h('li', { class: 'empty-note' }, empty))
      return
    }
    ul.replaceChildren(...rows.map(row => {
      const current = selected && row.id === selected.id && row.isPrivate === !!selected.private
      return h('li', {},
        h('a', { href: row.href, class: 'item-link', 'aria-current': current ? 'page' : false, dataset: { id: row.id } },
          h('span', { class: 'item-title' },
            row.isPrivate ? h('span', { class: 'lock', title: 'Private', 'aria-label': 'Private note', role: 'img' }, lockIcon()) : null,
            row.title?.trim() ? row.title : untitled),
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
  return { el: ul, destroy: () => { observers.forEach(off => off()); clearInterval(timer) } }
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
    write(Date.now())
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
