// Opening documents: one Y.Doc per document name, persisted in the browser with y-indexeddb and
// synced with the server through a stock provider. Screens open what they show and release it when
// they leave; a document is closed a moment after its last user lets go.
//
// Two dialects, both stock clients: notes travel over Hocuspocus (`/hocuspocus`, the page's one
// socket, as their Tiptap editor expects), everything else over y-websocket (`/sync`, a socket per
// document). A note is the same document either way (same name, same Y.Doc layout), so
// `?notes=y-websocket` in the page's address opens notes in the ProseMirror editor over
// y-websocket instead, and both kinds of client edit the same note together.
//
// Offline: `navigator.onLine` going false disconnects every provider (a browser may keep a socket
// half-open while the network is down, and edits must not be lost in it); coming back connects
// them again, and the sync handshake (state vectors both ways) merges what either side missed.
// IndexedDB holds every local edit, so a reload while offline keeps them too.

import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { IndexeddbPersistence } from 'y-indexeddb'
import { hocuspocusProvider, hocuspocusOnline } from './hocuspocus.js'

const wsBase = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}`
// The path the page was served under (a reverse proxy may mount tandem below `/`).
const basePath = location.pathname.replace(/\/[^/]*$/, '')

/** Grace period before an unused document is closed: quick back-and-forth reuses it. */
const CLOSE_AFTER_MS = 1500

/** Note documents: `notes/<id>` and `private/<sub>/notes/<id>`. */
const NOTE_DOC = /^(private\/[^/]+\/)?notes\/[^/]+$/

/** The dialect notes are opened in on this page: 'hocuspocus' unless the address asks otherwise. */
export const notesDialect = new URLSearchParams(location.search).get('notes') === 'y-websocket' ? 'y-websocket' : 'hocuspocus'

/** Which dialect carries the document `name`. */
export function dialectOf (name) {
  return NOTE_DOC.test(name) ? notesDialect : 'y-websocket'
}

const docs = new Map()
const changeListeners = new Set()
let user = null
let focus = null

/** Sets who the local user is on every open document's awareness. */
export function setUser (u) {
  user = u
  for (const entry of docs.values()) announceUser(entry)
}

export function currentUser () {
  return user
}

function announceUser (entry) {
  if (!user) return
  entry.awareness.setLocalStateField('user', { name: user.name, color: user.color, sub: user.sub })
}

/**
 * Opens (or reuses) a document. Returns the shared entry: { name, dialect, doc, provider,
 * awareness, idb, status, synced, localLoaded, refused }. Call release(entry) when done.
 */
export function openDoc (name) {
  let entry = docs.get(name)
  if (entry) {
    entry.refs++
    clearTimeout(entry.closeTimer)
    entry.closeTimer = null
    return entry
  }
  const doc = new Y.Doc()
  const idb = new IndexeddbPersistence(`tandem:${name}`, doc)
  const dialect = dialectOf(name)
  const provider = dialect === 'hocuspocus'
    ? hocuspocusProvider(wsBase + basePath + '/hocuspocus', name, doc, user?.token)
    : new WebsocketProvider(wsBase + basePath + '/sync', name, doc, {
      params: user?.token ? { token: user.token } : {},
      connect: navigator.onLine
    })
  entry = {
    name,
    dialect,
    doc,
    idb,
    provider,
    awareness: provider.awareness,
    refs: 1,
    closeTimer: null,
    status: provider.status || (navigator.onLine ? 'connecting' : 'disconnected'),
    synced: false,
    localLoaded: false,
    refused: null,
    missing: false,
    pending: 0
  }
  docs.set(name, entry)
  announceUser(entry)
  provider.on('status', ({ status }) => {
    entry.status = status
    if (status === 'connected') entry.refused = null
    changed(entry)
  })
  provider.on('sync', synced => {
    entry.synced = synced
    if (synced) { entry.pending = 0; notify() }
    changed(entry)
  })
  provider.on('closed', ({ code, reason }) => {
    // The server closed with a 44xx code (refused): y-websocket stops retrying. Hocuspocus says
    // the same of one document with PermissionDenied.
    entry.refused = { code, reason, kind: code === 4404 ? 'not-found' : 'refused' }
    // Deleted on the server (4404): the copy in this browser must not bring it back.
    if (code === 4404) forgetLocal(entry)
    changed(entry)
    // Hocuspocus refuses a bad name and a bad token alike: the HTTP answer tells them apart.
    if (dialect === 'hocuspocus') probe(entry, { force: true })
  })
  // A refused upgrade (HTTP 400/401/403) reaches a browser's websocket as a bare close (1006),
  // the same as a network failure: y-websocket would retry forever. Ask the server over HTTP.
  provider.on('connection-close', () => probe(entry))
  // Edits made while not in sync with the server, shown as "changes waiting"; the sync
  // handshake sends them all when the connection returns.
  doc.on('update', (_update, _origin, _doc, tr) => {
    if (!tr.local) return
    if (entry.status === 'connected' && entry.synced && navigator.onLine) return
    entry.pending++
    notify()
  })
  provider.awareness.on('change', () => {
    learnPeople(entry.awareness)
    changed(entry)
  })
  idb.whenSynced.then(() => { entry.localLoaded = true; changed(entry) }, () => {})
  return entry
}

/**
 * Why the server refused the socket of `entry`, asked over HTTP (`GET /api/docs/<doc>/presence`
 * takes the same token and role as the socket): 400 is a name the server never serves, 401 a
 * token it does not accept, 403 a document this token may not read. At most every 5 s per
 * document; a network failure (or a 2xx) leaves the provider retrying.
 */
async function probe (entry, { force = false } = {}) {
  if (!navigator.onLine || entry.probing) return
  if (!force && (entry.refused || Date.now() - (entry.probedAt || 0) < 5000)) return
  entry.probing = true
  entry.probedAt = Date.now()
  try {
    const path = entry.name.split('/').map(encodeURIComponent).join('/')
    const res = await fetch(`./api/docs/${path}/presence`, {
      headers: { accept: 'application/json', ...(user?.token ? { authorization: `Bearer ${user.token}` } : {}) }
    })
    if (![400, 401, 403, 404].includes(res.status)) return
    let reason = ''
    try { reason = (await res.json()).message || '' } catch { /* the status says enough */ }
    entry.refused = { code: res.status, reason, kind: res.status === 400 || res.status === 404 ? 'not-found' : 'refused' }
    entry.provider.disconnect()
    changed(entry)
  } catch { /* offline or unreachable: the provider keeps trying */ } finally {
    entry.probing = false
  }
}

/** Drops the browser's copy of a document deleted on the server. */
export function forgetLocal (entry) {
  if (entry.deleted) return
  entry.deleted = true
  if (entry.provider.stop) entry.provider.stop()
  else entry.provider.disconnect()
  entry.idb.clearData().catch(() => {})
}

/** A document that turned out not to exist (nothing there once in sync with the server). */
export function markMissing (entry) {
  entry.missing = true
  changed(entry)
}

/** Edits in the open documents not yet shared with the server. */
export function pendingChanges () {
  let n = 0
  for (const entry of docs.values()) n += entry.pending
  return n
}

/** Lets go of a document opened with openDoc. */
export function release (entry) {
  if (!entry || --entry.refs > 0) return
  entry.closeTimer = setTimeout(() => {
    if (entry.refs > 0) return
    docs.delete(entry.name)
    // destroy() tells the others this client left (awareness null) and closes the socket.
    entry.provider.destroy()
    if (!entry.deleted) entry.idb.destroy().catch(() => {})
    entry.doc.destroy()
  }, CLOSE_AFTER_MS)
}

/** The document the current screen is about: its presence and connection show in the top bar. */
export function setFocus (entry) {
  focus = entry
  notify()
}

export function getFocus () {
  return focus
}

/** Calls fn() whenever the focused document's connection or presence changes, or the network does. */
export function onChange (fn) {
  changeListeners.add(fn)
  return () => changeListeners.delete(fn)
}

function changed (entry) {
  if (entry === focus) notify()
}

function notify () {
  for (const fn of changeListeners) fn()
}

/** 'connected' | 'reconnecting' | 'offline' | 'refused' | 'not-found' for a document entry. */
export function connectionState (entry) {
  if (!navigator.onLine) return 'offline'
  if (!entry) return 'reconnecting'
  if (entry.refused) return entry.refused.kind || 'refused'
  if (entry.missing) return 'not-found'
  if (entry.status === 'connected' && entry.synced) return 'connected'
  return 'reconnecting'
}

/** The users present in a document: one row per client, the local one first. */
export function presence (entry) {
  if (!entry) return []
  const rows = []
  for (const [clientID, state] of entry.awareness.getStates()) {
    if (!state?.user) continue
    rows.push({ clientID, user: state.user, self: clientID === entry.doc.clientID, state })
  }
  rows.sort((a, b) => (b.self - a.self) || a.user.name.localeCompare(b.user.name))
  return rows
}

/**
 * The people present in a document: one row per person (by `sub`, else name), however many
 * clients they have there (two tabs; a reload whose old socket the server has not yet seen go).
 */
export function viewers (entry) {
  const byPerson = new Map()
  for (const row of presence(entry)) {
    const key = row.user.sub || `name:${row.user.name}`
    const known = byPerson.get(key)
    if (!known) byPerson.set(key, { ...row, clients: 1 })
    else { known.clients++; known.self = known.self || row.self }
  }
  const rows = Array.from(byPerson.values())
  rows.sort((a, b) => (b.self - a.self) || a.user.name.localeCompare(b.user.name))
  return rows
}

window.addEventListener('offline', () => {
  for (const entry of docs.values()) entry.provider.disconnect()
  hocuspocusOnline(false)
  notify()
})

window.addEventListener('online', () => {
  for (const entry of docs.values()) {
    if (entry.deleted) continue
    entry.refused = null
    entry.probedAt = 0
    entry.provider.connect()
  }
  hocuspocusOnline(true)
  notify()
})

/** Names of the index documents. */
export const SHARED_INDEX = 'workspace/index'
export const privateIndex = sub => `private/${sub}/index`

/** Writes a summary row of an index map in one transaction: { title, updated, ... }. */
export function writeSummary (indexDoc, mapName, id, fields) {
  const map = indexDoc.getMap(mapName)
  indexDoc.transact(() => {
    let row = map.get(id)
    if (!(row instanceof Y.Map)) {
      row = new Y.Map()
      map.set(id, row)
    }
    for (const [key, value] of Object.entries(fields)) {
      const same = value !== null && typeof value === 'object'
        ? JSON.stringify(row.get(key)) === JSON.stringify(value)
        : row.get(key) === value
      if (!same) row.set(key, value)
    }
  })
}

/** Plain rows of an index map: [{ id, title, updated, ... }], newest first. */
export function summaries (indexDoc, mapName) {
  const rows = []
  indexDoc.getMap(mapName).forEach((row, id) => {
    if (row instanceof Y.Map) rows.push({ id, ...row.toJSON() })
  })
  rows.sort((a, b) => (b.updated || 0) - (a.updated || 0) || a.id.localeCompare(b.id))
  return rows
}

// Authors are stored by id (`sub`); the names and colours to show for them are learnt from the
// awareness states seen and kept in localStorage.
const PEOPLE_KEY = 'tandem.people'
let people = {}
try { people = JSON.parse(localStorage.getItem(PEOPLE_KEY) || '{}') || {} } catch { people = {} }

function learnPeople (awareness) {
  let dirty = false
  for (const state of awareness.getStates().values()) {
    const u = state?.user
    if (!u?.sub || typeof u.name !== 'string') continue
    const known = people[u.sub]
    if (!known || known.name !== u.name || known.color !== u.color) {
      people[u.sub] = { name: u.name, color: u.color }
      dirty = true
    }
  }
  if (dirty) {
    try { localStorage.setItem(PEOPLE_KEY, JSON.stringify(people)) } catch { /* storage full */ }
  }
}

/** The name and colour to show for an author id. */
/**
 * Names from the server's people directory (GET /api/people: the name each person signed in
 * with, verified by the server), so an author shows by name even when they are not online. A
 * colour someone picked (seen in awareness) is kept.
 */
export function learnDirectory (list) {
  for (const p of list) {
    if (!p?.sub || typeof p.name !== 'string') continue
    const known = people[p.sub]
    people[p.sub] = { name: p.name, color: known?.color || p.color }
  }
  try { localStorage.setItem(PEOPLE_KEY, JSON.stringify(people)) } catch { /* full or private mode */ }
  notify()
}

export function person (sub) {
  if (user && sub === user.sub) return { name: user.name, color: user.color }
  return people[sub] || { name: sub || 'Someone', color: '#64748b' }
}
