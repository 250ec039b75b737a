// The stock `@hocuspocus/provider` as Tiptap apps use it: one HocuspocusProviderWebsocket per
// page, one HocuspocusProvider per document attached to it. Every provider publishes a presence
// state from the start, as an editor with carets does. Every wait is bounded.
import * as Y from 'yjs'
import WebSocket from 'ws'
import { HocuspocusProvider, HocuspocusProviderWebsocket } from '@hocuspocus/provider'
import { waitFor } from './harness.mjs'

/** The Hocuspocus endpoint of a server started by the harness. */
export const hocuspocusUrl = (server) => `ws://${server.addr}/hocuspocus`

/**
 * One page's socket. Reconnects quickly (100 ms, at most 500 ms) so that a dropped connection
 * comes back within a test's bounds; everything else is the stock configuration.
 */
export function pageSocket (server) {
  return new HocuspocusProviderWebsocket({
    url: hocuspocusUrl(server),
    WebSocketPolyfill: WebSocket,
    delay: 100,
    minDelay: 100,
    maxDelay: 500,
    jitter: false
  })
}

/**
 * A document on `socket`: a Y.Doc, its provider, what it was told (scope, refusals, closes,
 * stateless messages) and a presence state naming `user`.
 */
export function openDocument (socket, name, { token = 'dev', doc = new Y.Doc(), user = 'someone', sessionAwareness = false } = {}) {
  const seen = { scope: null, denied: [], closes: [], stateless: [] }
  const provider = new HocuspocusProvider({
    websocketProvider: socket,
    name,
    document: doc,
    token,
    sessionAwareness,
    onAuthenticated: ({ scope }) => { seen.scope = scope },
    onAuthenticationFailed: ({ reason }) => { seen.denied.push(reason) },
    onClose: ({ event }) => { seen.closes.push(event.reason) },
    onStateless: ({ payload }) => { seen.stateless.push(payload) }
  })
  provider.setAwarenessField('user', { name: user })
  provider.attach()
  return {
    doc,
    provider,
    seen,
    name,
    text: (field = 't') => doc.getText(field).toString(),
    type: (words, field = 't') => { const t = doc.getText(field); t.insert(t.length, words) },
    /** Authenticated and synced, and every change sent so far acknowledged. */
    settled: (ms = 5000) => waitFor(() => provider.isAuthenticated && provider.synced && provider.unsyncedChanges === 0, ms, `${name} settled (unsynced ${provider.unsyncedChanges})`),
    /** The names in the presence states this provider sees, other than its own. */
    others: () => [...(provider.awareness?.getStates() ?? new Map()).entries()]
      .filter(([id]) => id !== doc.clientID).map(([, s]) => s.user?.name).filter(Boolean).sort(),
    destroy: () => { provider.destroy(); doc.destroy() }
  }
}
