// Small DOM helpers: the demo is plain JavaScript (no framework) to keep the dependency tree and
// the committed bundle small.

/**
 * Builds an element: h('button', { class: 'btn', onclick }, 'Save').
 * Attributes starting with `on` become listeners; `false`/`null` attributes are skipped.
 */
export function h (tag, attrs = {}, ...children) {
  const el = document.createElement(tag)
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === false || value === null || value === undefined) continue
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2).toLowerCase(), value)
    } else if (key === 'class') {
      el.className = value
    } else if (key === 'style' && typeof value === 'object') {
      Object.assign(el.style, value)
    } else if (key === 'dataset') {
      Object.assign(el.dataset, value)
    } else if (key in el && typeof value !== 'string') {
      el[key] = value
    } else {
      el.setAttribute(key, value === true ? '' : String(value))
    }
  }
  append(el, children)
  return el
}

function append (el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue
    if (Array.isArray(child)) append(el, child)
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)))
  }
}

/** Replaces every child of `el`. */
export function mount (el, ...children) {
  el.replaceChildren()
  append(el, children)
  return el
}

/** Two initials of a display name. */
export function initials (name) {
  const words = String(name || '?').trim().split(/\s+/).filter(Boolean)
  if (words.length === 0) return '?'
  if (words.length === 1) return words[0].slice(0, 2).toUpperCase()
  return (words[0][0] + words[words.length - 1][0]).toUpperCase()
}

/** A round avatar with initials on the user's colour. */
export function avatar (user, extraClass = '') {
  const name = user?.name || 'Anonymous'
  return h('span', {
    class: `avatar ${extraClass}`.trim(),
    style: { background: user?.color || '#64748b' },
    title: name,
    'aria-label': name,
    role: 'img'
  }, initials(name))
}

/** A random id for new documents: 10 characters of [a-z0-9]. Works outside secure contexts. */
export function newId () {
  const bytes = new Uint8Array(10)
  crypto.getRandomValues(bytes)
  return Array.from(bytes, b => 'abcdefghijklmnopqrstuvwxyz0123456789'[b % 36]).join('')
}

const rtf = typeof Intl !== 'undefined' && Intl.RelativeTimeFormat
  ? new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' })
  : null

/** "3 minutes ago" for a time in ms. */
export function ago (ms) {
  if (!ms) return ''
  const s = Math.round((ms - Date.now()) / 1000)
  if (!rtf) return new Date(ms).toLocaleString()
  const abs = Math.abs(s)
  if (abs < 45) return 'just now'
  if (abs < 3600) return rtf.format(Math.round(s / 60), 'minute')
  if (abs < 86400) return rtf.format(Math.round(s / 3600), 'hour')
  return rtf.format(Math.round(s / 86400), 'day')
}

/** Announces a message to screen readers through the polite live region. */
export function announce (text) {
  const region = document.getElementById('announcer')
  if (region) {
    region.textContent = ''
    setTimeout(() => { region.textContent = text }, 30)
  }
}
