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
      // setProperty, not Object.assign: assigning a custom property (`--swatch`) to the style
      // object is silently dropped.
      for (const [prop, v] of Object.entries(value)) {
        if (prop.startsWith('--')) el.style.setProperty(prop, v)
        else el.style[prop] = v
      }
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

/** Relative luminance of `#rrggbb` (WCAG 2). */
function luminance (hex) {
  const n = parseInt(hex.slice(1), 16)
  const lin = c => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4 }
  return 0.2126 * lin(n >> 16) + 0.7152 * lin((n >> 8) & 255) + 0.0722 * lin(n & 255)
}

/** WCAG contrast ratio of `#rrggbb` against white. */
export function contrastOnWhite (hex) {
  return 1.05 / (luminance(hex) + 0.05)
}

const inkCache = new Map()

/**
 * A user's colour made fit for small text: `color` itself when it reaches 4.5:1 against white
 * (WCAG AA; so does white text on it), else the same hue darkened until it does. Colours come
 * from other clients and the directory, so they are never trusted to be readable.
 */
export function ink (color) {
  if (typeof color !== 'string' || !/^#[0-9a-f]{6}$/i.test(color)) return '#475569'
  let out = inkCache.get(color)
  if (out) return out
  let [r, g, b] = [1, 3, 5].map(i => parseInt(color.slice(i, i + 2), 16))
  out = color.toLowerCase()
  for (let i = 0; i < 40 && contrastOnWhite(out) < 4.6; i++) {
    [r, g, b] = [r, g, b].map(c => Math.floor(c * 0.93))
    out = '#' + [r, g, b].map(c => c.toString(16).padStart(2, '0')).join('')
  }
  inkCache.set(color, out)
  return out
}

/** A round avatar with initials on the user's colour. */
export function avatar (user, extraClass = '') {
  const name = user?.name || 'Anonymous'
  return h('span', {
    class: `avatar ${extraClass}`.trim(),
    style: { background: ink(user?.color || '#64748b') },
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
