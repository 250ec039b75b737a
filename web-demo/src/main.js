// tandem web demo: notes, contacts and issues edited together over yjs + y-websocket.
// Hash routing (#/notes/abc) so the server only serves `/` and the built assets.

import './style.css'
import { h, mount, avatar } from './ui.js'
import { COLORS, slug, loadUser, saveUser, forgetUser, fetchSession, refresh, devToken, jwtClaims } from './session.js'
import { openDoc, setUser, onChange, getFocus, connectionState, viewers, pendingChanges, SHARED_INDEX, privateIndex } from './sync.js'
import { notesScreen } from './notes.js'
import { contactsScreen } from './contacts.js'
import { issuesScreen } from './issues.js'
import { createBell } from './bell.js'
import { people } from './people.js'

const app = document.getElementById('app')

boot()

async function boot () {
  registerServiceWorker()
  const session = await fetchSession()
  let user = loadUser()
  if (user) user = await refresh(user, session)
  if (user) {
    saveUser(user)
    start(user)
  } else {
    signIn(session)
  }
}

// ---------------------------------------------------------------------------------------------
// Sign-in

function signIn (session, error = '') {
  const previous = loadUser()
  const needsToken = session.auth && !session.dev_login
  let color = previous?.color || COLORS[Math.floor(Math.random() * COLORS.length)].value
  const nameInput = h('input', {
    id: 'signin-name',
    class: 'input input-l',
    name: 'name',
    autocomplete: 'nickname',
    required: true,
    maxLength: 40,
    placeholder: 'e.g. Ada Lovelace',
    value: previous?.name || ''
  })
  const preview = h('span', { class: 'signin-preview', 'aria-hidden': 'true' })
  const updatePreview = () => mount(preview, avatar({ name: nameInput.value || '?', color }, 'avatar-l'))
  nameInput.addEventListener('input', updatePreview)
  const swatches = COLORS.map(c => h('label', { class: 'swatch', style: { '--swatch': c.value } },
    h('input', {
      type: 'radio',
      name: 'color',
      value: c.value,
      checked: c.value === color,
      onchange: () => { color = c.value; updatePreview() }
    }),
    h('span', { class: 'swatch-dot', 'aria-hidden': 'true' }, h('span', { class: 'swatch-check' }, '✓')),
    h('span', { class: 'sr-only' }, c.name)))
  const tokenInput = needsToken
    ? h('textarea', { id: 'signin-token', class: 'input mono', rows: 3, required: true, placeholder: 'eyJhbGciOi…' })
    : null
  const errorBox = h('p', { class: 'form-error', role: 'alert' }, error)
  const submit = h('button', { type: 'submit', class: 'btn btn-primary btn-l' }, 'Continue')

  const form = h('form', {
    class: 'signin-card',
    'aria-labelledby': 'signin-title',
    onsubmit: async e => {
      e.preventDefault()
      const name = nameInput.value.trim()
      if (!name) { nameInput.focus(); return }
      submit.disabled = true
      errorBox.textContent = ''
      try {
        let user = { name, color, sub: slug(name), token: null, devToken: false }
        if (needsToken) {
          const token = tokenInput.value.trim()
          const claims = jwtClaims(token)
          if (!claims?.sub) throw new Error('that does not look like a JWT with a `sub` claim')
          user = { ...user, sub: claims.sub, token }
        } else if (session.dev_login) {
          user = { ...user, token: await devToken(user), devToken: true }
        }
        saveUser(user)
        start(user)
      } catch (err) {
        errorBox.textContent = `Could not sign in: ${err.message}`
        submit.disabled = false
      }
    }
  },
  h('div', { class: 'brand brand-l' }, logo(), 'tandem'),
  h('h1', { id: 'signin-title' }, 'Join the workspace'),
  h('p', { class: 'muted' }, modeText(session)),
  h('label', { for: 'signin-name', class: 'field-label' }, 'Display name'),
  h('div', { class: 'row gap-m' }, preview, nameInput),
  h('fieldset', { class: 'swatches' }, h('legend', { class: 'field-label' }, 'Your colour'), swatches),
  needsToken ? h('label', { for: 'signin-token', class: 'field-label' }, 'Access token (JWT)') : null,
  tokenInput,
  errorBox,
  submit)

  mount(app, h('main', { id: 'main', class: 'signin' }, form))
  updatePreview()
  nameInput.focus()
}

function modeText (session) {
  if (session.offline) return 'You are offline: sign in again once the connection is back.'
  if (!session.auth) return 'Development server: pick a name and a colour, no password needed.'
  if (session.dev_login) return 'Demo sign-in: the server issues you a token for the name you pick.'
  return 'This server checks tokens: paste the JWT your administrator gave you.'
}

function logo () {
  return h('span', { class: 'logo', 'aria-hidden': 'true' }, h('span'), h('span'))
}

// ---------------------------------------------------------------------------------------------
// The app shell

function start (user) {
  setUser(user)
  // The index documents stay open for the whole visit: every screen reads them.
  const shared = openDoc(SHARED_INDEX)
  const mine = openDoc(privateIndex(user.sub))
  const ctx = { user, shared, mine }

  const bell = createBell(user)
  // Names from the server's directory, for authors who are not online.
  people()
  const presenceEl = h('div', { class: 'presence', 'data-testid': 'presence', 'aria-live': 'polite' })
  const connEl = h('div', { class: 'conn', role: 'status', 'data-testid': 'connection' })
  const nav = h('nav', { class: 'tabs', 'aria-label': 'Sections' },
    ['notes', 'contacts', 'issues'].map(section => h('a', { href: `#/${section}`, class: 'tab', dataset: { section } },
      section[0].toUpperCase() + section.slice(1))))
  const main = h('main', { id: 'main', class: 'main', tabindex: '-1' })
  // "Access refused" / "Not found": shown instead of the screen when the focused document is.
  const blocked = h('section', { class: 'blocked', hidden: true, 'data-testid': 'blocked', 'aria-live': 'polite' })
  const signOut = () => {
    forgetUser()
    location.hash = ''
    location.reload()
  }
  const header = h('header', { class: 'topbar' },
    h('a', { class: 'brand', href: '#/notes', 'aria-label': 'tandem home' }, logo(), 'tandem'),
    nav,
    h('div', { class: 'topbar-right' },
      bell.el,
      presenceEl,
      connEl,
      h('div', { class: 'me' },
        avatar(user),
        h('span', { class: 'me-name' }, user.name),
        h('button', { type: 'button', class: 'btn btn-ghost btn-s', onclick: signOut }, 'Sign out'))))
  mount(app, header, main, blocked, h('div', { id: 'announcer', class: 'sr-only', 'aria-live': 'polite' }))

  const renderStatus = () => {
    const focus = getFocus()
    const state = connectionState(focus)
    const waiting = pendingChanges()
    const labels = { connected: 'Connected', reconnecting: 'Reconnecting…', offline: 'Offline', refused: 'Access refused', 'not-found': 'Not found' }
    const title = {
      connected: 'Live: edits are shared as you type',
      reconnecting: 'Trying to reach the server; edits are kept and sent when it answers',
      offline: 'No network: edits are saved in this browser and merge when you are back online',
      refused: `The server refused this document${focus?.refused?.reason ? ': ' + focus.refused.reason : ''}`,
      'not-found': 'There is no such document'
    }
    connEl.dataset.state = state
    connEl.title = title[state]
    const unsynced = waiting > 0 && (state === 'offline' || state === 'reconnecting')
    mount(connEl, h('span', { class: 'conn-dot', 'aria-hidden': 'true' }), h('span', { class: 'conn-label' }, labels[state]),
      unsynced
        ? h('span', { class: 'conn-pending', 'data-testid': 'pending', title: `${waiting} ${waiting === 1 ? 'change' : 'changes'} saved here, sent when the connection returns` },
          ` · ${waiting} unsynced`)
        : null)
    renderBlocked(focus, state)

    const rows = viewers(focus)
    const shown = rows.slice(0, 4)
    mount(presenceEl,
      h('div', { class: 'avatars' }, shown.map((r, i) => {
        const a = avatar(r.user, r.self ? 'avatar-self' : '')
        a.dataset.name = r.user.name
        a.style.zIndex = String(shown.length - i) // each one above the next: initials stay whole
        if (r.self) { a.title = `${r.user.name} (you)`; a.setAttribute('aria-label', a.title) }
        return a
      }), rows.length > shown.length ? h('span', { class: 'avatar avatar-more' }, `+${rows.length - shown.length}`) : null),
      h('span', { class: 'viewers', title: rows.map(r => r.user.name).join(', ') },
        h('span', { 'data-testid': 'viewer-count' }, String(rows.length)),
        h('span', { class: 'viewers-word' }, rows.length === 1 ? ' viewer' : ' viewers')))
  }
  const renderBlocked = (focus, state) => {
    const kind = state === 'refused' || state === 'not-found' ? state : null
    main.hidden = !!kind
    blocked.hidden = !kind
    if (!kind) { blocked.replaceChildren(); return }
    if (blocked.dataset.kind === kind && blocked.childElementCount) return
    blocked.dataset.kind = kind
    const reason = focus?.refused?.reason
    mount(blocked, kind === 'refused'
      ? h('div', { class: 'empty-state' },
        h('div', { class: 'empty-icon', 'aria-hidden': 'true' }, '⛔'),
        h('h1', {}, 'Access refused'),
        h('p', { class: 'muted' }, 'The server did not accept your sign-in for this document',
          reason ? `: ${reason}.` : '.', ' Sign in again, or ask an administrator for access.'),
        h('div', { class: 'row gap-m center' },
          h('a', { class: 'btn', href: '#/notes' }, 'Back to notes'),
          h('button', { type: 'button', class: 'btn btn-primary', onclick: signOut }, 'Sign in again')))
      : h('div', { class: 'empty-state' },
        h('div', { class: 'empty-icon', 'aria-hidden': 'true' }, '?'),
        h('h1', {}, 'Not found'),
        h('p', { class: 'muted' }, 'Nothing is here: it was deleted, the link is mistyped, or it is someone else\'s private note.'),
        h('a', { class: 'btn', href: '#/notes' }, 'Back to notes')))
  }
  onChange(renderStatus)
  window.addEventListener('online', renderStatus)
  window.addEventListener('offline', renderStatus)
  renderStatus()

  let cleanup = null
  let lastSection = null
  const route = () => {
    const path = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent)
    if (path.length === 0) { location.replace('#/notes'); return }
    const [section, ...rest] = path
    const screens = { notes: notesScreen, private: notesScreen, contacts: contactsScreen, issues: issuesScreen }
    const screen = screens[section]
    if (!screen) { location.replace('#/notes'); return }
    const navSection = section === 'private' ? 'notes' : section
    for (const tab of nav.children) {
      if (tab.dataset.section === navSection) tab.setAttribute('aria-current', 'page')
      else tab.removeAttribute('aria-current')
    }
    const params = section === 'private'
      ? { id: rest[1] || null, private: true }
      : { id: rest[0] || null, private: false }
    cleanup?.()
    cleanup = screen(main, params, ctx) || null
    document.title = `${navSection[0].toUpperCase() + navSection.slice(1)} · tandem`
    if (lastSection !== null && lastSection !== navSection) main.focus({ preventScroll: true })
    lastSection = navSection
  }
  window.addEventListener('hashchange', route)
  route()
}

function registerServiceWorker () {
  // Caches the app shell so that a reload while offline still opens the page; the documents
  // themselves come from IndexedDB. Only where the browser allows it (https or localhost).
  if ('serviceWorker' in navigator && window.isSecureContext) {
    navigator.serviceWorker.register('./sw.js').catch(() => {})
  }
}
