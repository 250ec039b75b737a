// Who the user is: a display name and colour kept in localStorage, an author id (`sub`) and, when
// the server has authentication configured, a JWT for the websocket's `?token=`.
//
// The server tells the mode at GET /api/session → {"auth": bool, "dev_login": bool}:
// - no auth (development mode): any document is readable and writable; the server still mints
//   a token for the picked name (dev_login), so notifications and presence tell people apart;
// - auth + dev_login: POST /api/dev/token {"sub", "name"} mints a token for the picked name;
// - auth without dev_login: the user pastes a JWT issued elsewhere (real deployment).
// A server without /api/session (404, older build) is treated as development mode.

const USER_KEY = 'tandem.user'

// Every colour reaches 4.5:1 against white (and white text on it), since it colours small text:
// initials, caret labels, "typing…" (WCAG AA). Amber, emerald, sky and teal are the 700 shades.
export const COLORS = [
  { name: 'Indigo', value: '#4f46e5' },
  { name: 'Rose', value: '#e11d48' },
  { name: 'Emerald', value: '#047857' },
  { name: 'Amber', value: '#b45309' },
  { name: 'Sky', value: '#0369a1' },
  { name: 'Violet', value: '#7c3aed' },
  { name: 'Teal', value: '#0f766e' },
  { name: 'Slate', value: '#475569' }
]

/** An author id from a display name: the server accepts 1–64 of [A-Za-z0-9._-]. */
export function slug (name) {
  const s = String(name).normalize('NFKD').replace(/[\u0300-\u036f]/g, '')
    .toLowerCase().replace(/[^a-z0-9._-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 64)
  return s || 'user'
}

export function loadUser () {
  try {
    const user = JSON.parse(localStorage.getItem(USER_KEY) || 'null')
    if (user && typeof user.name === 'string' && user.name.trim() && user.sub) return user
  } catch { /* a damaged entry counts as signed out */ }
  return null
}

export function saveUser (user) {
  localStorage.setItem(USER_KEY, JSON.stringify(user))
}

export function forgetUser () {
  localStorage.removeItem(USER_KEY)
}

/** The server's authentication mode; development mode when the endpoint is missing or unreachable. */
export async function fetchSession () {
  try {
    const res = await fetch('./api/session', { headers: { accept: 'application/json' } })
    if (!res.ok) return { auth: false, dev_login: false, known: false }
    const body = await res.json()
    return { auth: !!body.auth, dev_login: !!body.dev_login, known: true }
  } catch {
    // Offline: reuse what the last successful visit learnt, so a reload offline keeps working.
    const last = loadUser()
    return { auth: !!last?.token, dev_login: !!last?.devToken, known: false, offline: true }
  }
}

/** Decodes a JWT's claims (no verification: the server verifies). */
export function jwtClaims (token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')
    const json = decodeURIComponent(Array.from(atob(part), c => '%' + c.charCodeAt(0).toString(16).padStart(2, '0')).join(''))
    return JSON.parse(json)
  } catch {
    return null
  }
}

function tokenValid (token) {
  const claims = token && jwtClaims(token)
  return !!claims && (!claims.exp || claims.exp * 1000 > Date.now() + 60_000)
}

/** Asks the dev-login endpoint for a token for this user. */
export async function devToken (user) {
  const res = await fetch('./api/dev/token', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ sub: user.sub, name: user.name })
  })
  if (!res.ok) {
    let message = `the server refused a dev token (HTTP ${res.status})`
    try { message = (await res.json()).message || message } catch { /* keep the status */ }
    throw new Error(message)
  }
  const { token } = await res.json()
  if (!token) throw new Error('the server answered without a token')
  return token
}

/**
 * Makes sure a stored user still has what the server needs. Returns the user (maybe with a fresh
 * token) or null when the user must sign in again.
 */
export async function refresh (user, session) {
  if (!session.auth && !session.dev_login) return { ...user, token: null, devToken: false }
  // Open mode signs dev tokens with a key that changes when the server restarts: ask again.
  const fresh = !session.auth && session.known
  if (tokenValid(user.token) && !fresh) return user
  if (session.dev_login) {
    try {
      return { ...user, token: await devToken(user), devToken: true }
    } catch {
      // Open mode works without one (as "anonymous"); a server that checks tokens does not.
      return session.auth ? null : { ...user, token: null, devToken: false }
    }
  }
  return null
}
