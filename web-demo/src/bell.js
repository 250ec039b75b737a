// The notification bell in the top bar: the unread count, a list that opens the item it is about,
// and "Mark all read". It reads GET /api/me/notifications and stays live on the server's
// notification stream (GET /api/me/events, Server-Sent Events; EventSource resumes by
// Last-Event-ID by itself after a drop).

import { h, mount, ago } from './ui.js'
import { authHeaders } from './people.js'

/** Where the app shows a document: notes/1 → #/notes/1, private/<space>/notes/1 → #/private/<space>/1. */
export function routeOf (doc) {
  const parts = doc.split('/')
  if (parts[0] === 'private' && parts.length === 4) return `#/private/${parts[1]}/${parts[3]}`
  return `#/${parts.map(encodeURIComponent).join('/')}`
}

export function createBell (user) {
  let items = []
  let unread = 0
  const count = h('span', { class: 'bell-count', 'data-testid': 'bell-count', hidden: true })
  const button = h('button', {
    type: 'button',
    class: 'btn btn-ghost btn-s bell',
    'aria-haspopup': 'true',
    'aria-expanded': 'false',
    'aria-label': 'Notifications',
    'data-testid': 'bell',
    onclick: () => toggle()
  }, bellIcon(), count)
  const panel = h('div', { class: 'bell-panel', hidden: true, role: 'dialog', 'aria-label': 'Notifications', 'data-testid': 'notifications' })
  const el = h('div', { class: 'bell-wrap' }, button, panel)

  const api = (path, init = {}) => fetch(path, { ...init, headers: { accept: 'application/json', 'content-type': 'application/json', ...authHeaders(), ...(init.headers || {}) } })

  function render () {
    count.hidden = unread === 0
    count.textContent = unread > 99 ? '99+' : String(unread)
    button.setAttribute('aria-label', unread ? `Notifications, ${unread} unread` : 'Notifications')
    mount(panel,
      h('div', { class: 'bell-head' },
        h('strong', {}, 'Notifications'),
        h('button', { type: 'button', class: 'btn btn-ghost btn-s', disabled: unread === 0, onclick: markAll }, 'Mark all read')),
      items.length === 0
        ? h('p', { class: 'muted bell-empty' }, 'Nothing yet. You hear here when someone assigns you, mentions you or answers you.')
        : h('ul', { class: 'bell-list' }, items.map(n => h('li', { class: n.read ? 'bell-item' : 'bell-item unread' },
          h('a', { href: routeOf(n.doc), onclick: () => open(n) },
            h('span', { class: 'bell-text' }, n.text),
            h('span', { class: 'muted bell-time' }, ago(n.at)))))))
  }

  function toggle (force) {
    const show = force ?? panel.hidden
    panel.hidden = !show
    button.setAttribute('aria-expanded', String(show))
  }

  async function load () {
    try {
      const res = await api('./api/me/notifications?limit=30')
      if (!res.ok) return
      const page = await res.json()
      items = page.notifications
      unread = page.unread
      render()
    } catch { /* offline: the stream catches up later */ }
  }

  async function open (n) {
    toggle(false)
    if (n.read) return
    n.read = true
    const res = await api('./api/me/notifications/read', { method: 'POST', body: JSON.stringify({ ids: [n.id] }) })
    if (res.ok) unread = (await res.json()).unread
    render()
  }

  async function markAll () {
    const res = await api('./api/me/notifications/read', { method: 'POST', body: JSON.stringify({ all: true }) })
    if (!res.ok) return
    unread = (await res.json()).unread
    items = items.map(n => ({ ...n, read: true }))
    render()
  }

  // EventSource sends no headers: the token goes in the query, as for the websocket.
  const query = user.token ? `?token=${encodeURIComponent(user.token)}` : ''
  const stream = new EventSource(`./api/me/events${query}`)
  stream.addEventListener('notification', e => {
    const n = JSON.parse(e.data)
    if (items.some(x => x.id === n.id)) return
    items = [n, ...items].slice(0, 30)
    if (!n.read) unread++
    render()
  })
  document.addEventListener('click', e => { if (!el.contains(e.target)) toggle(false) })
  render()
  load()
  return { el, close: () => stream.close() }
}

function bellIcon () {
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg')
  svg.setAttribute('viewBox', '0 0 24 24')
  svg.setAttribute('width', '18')
  svg.setAttribute('height', '18')
  svg.setAttribute('aria-hidden', 'true')
  svg.innerHTML = '<path fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round" d="M6 8a6 6 0 1 1 12 0c0 7 3 9 3 9H3s3-2 3-9M10.3 21a1.94 1.94 0 0 0 3.4 0"/>'
  return svg
}
