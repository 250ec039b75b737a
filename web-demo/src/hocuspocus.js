// The Hocuspocus dialect (`/hocuspocus`), as a Tiptap app speaks it: one HocuspocusProviderWebsocket
// for the page, one HocuspocusProvider per open document attached to it, each sending the user's
// token for its own document. The provider is wrapped to look like y-websocket's to sync.js
// (events `status`, `sync`, `closed`; connect/disconnect), so the screens need not care which
// dialect carries a document.

import { HocuspocusProvider, HocuspocusProviderWebsocket } from '@hocuspocus/provider'

let socket = null

/** The page's one socket, made on first use (connecting only while the browser is online). */
function pageSocket (url) {
  if (!socket) socket = new HocuspocusProviderWebsocket({ url, autoConnect: navigator.onLine })
  return socket
}

/** The network went away or came back: the shared socket follows (once, for every document). */
export function hocuspocusOnline (online) {
  if (!socket) return
  if (online) {
    socket.connect()
    return
  }
  socket.disconnect()
  // Chromium may hold the socket half-open once the network is gone, delivering its close event
  // much later; meanwhile the socket still says `connected` and would ignore connect() when the
  // network returns. Act on the close now, as the socket and its documents would on the real
  // event (the old socket's late event is unhooked by then): the provider does the same itself
  // when a socket stays silent too long.
  if (socket.status !== 'disconnected') socket.emit('close', { event: { code: 1000, reason: 'offline' } })
}

/**
 * Attaches `doc` under `name` to the page's socket at `url`. Returns a provider-like object:
 * { awareness, on(event, fn), off(event, fn), connect(), disconnect(), destroy(), status }.
 */
export function hocuspocusProvider (url, name, doc, token) {
  const listeners = new Map()
  const emit = (event, arg) => { for (const fn of listeners.get(event) || []) fn(arg) }
  const ws = pageSocket(url)
  const provider = new HocuspocusProvider({
    websocketProvider: ws,
    name,
    document: doc,
    // The server mints a token even in open mode; a page without one still says something.
    token: token || 'anonymous',
    onStatus: ({ status }) => {
      emit('status', { status })
      if (status !== 'connected') emit('sync', false)
    },
    onSynced: () => emit('sync', true),
    // A refusal concerns this document only; the socket's other documents carry on.
    onAuthenticationFailed: ({ reason }) => emit('closed', { code: 'permission-denied', reason }),
    // The server closes one document with a CLOSE message whose reason starts with the code
    // ("4404 document deleted"); a 44xx code is final, as y-websocket treats it.
    onClose: ({ event }) => {
      const code = event?.code >= 4400 ? event.code : Number(/^(\d{4}) /.exec(event?.reason || '')?.[1])
      if (code >= 4400 && code < 4500) emit('closed', { code, reason: event.reason })
    }
  })
  provider.attach()
  return {
    provider,
    awareness: provider.awareness,
    get status () { return ws.status },
    on (event, fn) {
      if (!listeners.has(event)) listeners.set(event, new Set())
      listeners.get(event).add(fn)
    },
    off (event, fn) { listeners.get(event)?.delete(fn) },
    // The socket is the page's: sync.js moves it once for all documents (hocuspocusOnline).
    connect () {},
    disconnect () {},
    /** Stops syncing this document for good (it was deleted), leaving the socket to the others. */
    stop () { provider.detach() },
    destroy () {
      listeners.clear()
      provider.destroy()
    }
  }
}
