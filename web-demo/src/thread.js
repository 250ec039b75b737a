// A discussion thread: replies under a note, comments on an issue. Layout shared with the server:
// a Y.Array of Y.Map { id, author, text: Y.Text, time, edited }. Everyone may reply; only the author
// edits or deletes a reply (the buttons show on your own replies only).

import * as Y from 'yjs'
import { h, avatar, ago, newId, announce } from './ui.js'
import { setText } from './bind-text.js'
import { currentUser, person } from './sync.js'
import { mentionable } from './people.js'

/**
 * Renders the thread stored in `array` into a new element and keeps it live.
 * Returns { el, destroy }.
 */
export function createThread (array, { noun = 'reply', title = 'Replies' } = {}) {
  const list = h('ol', { class: 'thread-list', 'aria-label': title })
  const count = h('span', { class: 'count-badge' })
  const editing = new Map() // id -> draft element kept across re-renders
  const confirming = new Set()

  const input = h('textarea', {
    class: 'input thread-input',
    rows: 2,
    placeholder: `Write a ${noun}…`,
    'aria-label': `New ${noun}`,
    onkeydown: e => { if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); submit() } }
  })
  mentionable(input)
  const submitButton = h('button', { type: 'submit', class: 'btn btn-primary' }, `Add ${noun}`)
  const form = h('form', {
    class: 'thread-form',
    onsubmit: e => { e.preventDefault(); submit() }
  }, input, h('div', { class: 'thread-form-actions' }, h('span', { class: 'hint hint-keys' }, 'Ctrl+Enter to send'), submitButton))

  function submit () {
    const text = input.value.trim()
    if (!text) { input.focus(); return }
    const me = currentUser()
    array.doc.transact(() => {
      const item = new Y.Map()
      item.set('id', newId())
      item.set('author', me.sub)
      item.set('text', new Y.Text(text))
      item.set('time', Date.now())
      item.set('edited', false)
      array.push([item])
    })
    input.value = ''
    announce(`${noun[0].toUpperCase() + noun.slice(1)} added`)
    input.focus()
  }

  function indexOf (id) {
    const items = array.toArray()
    return items.findIndex(m => m instanceof Y.Map && m.get('id') === id)
  }

  function render () {
    const items = array.toArray().filter(m => m instanceof Y.Map)
    count.textContent = String(items.length)
    const me = currentUser()
    const focusedId = document.activeElement?.closest?.('[data-reply-id]')?.dataset.replyId
    const focusedRole = document.activeElement?.dataset?.role
    list.replaceChildren(...items.map(item => {
      const id = String(item.get('id') ?? '')
      const author = String(item.get('author') ?? '')
      const who = person(author)
      const text = item.get('text')
      const body = text instanceof Y.Text ? text.toString() : String(text ?? '')
      const own = me && author === me.sub
      const time = item.get('time')
      const meta = h('div', { class: 'reply-meta' },
        h('strong', {}, who.name),
        h('time', { datetime: time ? new Date(time).toISOString() : '' , title: time ? new Date(time).toLocaleString() : '' }, ago(time)),
        item.get('edited') ? h('span', { class: 'muted' }, '(edited)') : null)
      let content
      if (own && editing.has(id)) {
        const draft = editing.get(id)
        content = h('form', {
          class: 'reply-edit',
          onsubmit: e => {
            e.preventDefault()
            const i = indexOf(id)
            if (i >= 0) {
              const map = array.get(i)
              array.doc.transact(() => {
                const t = map.get('text')
                if (t instanceof Y.Text) setText(t, draft.value.trim())
                else map.set('text', new Y.Text(draft.value.trim()))
                map.set('edited', true)
              })
            }
            editing.delete(id)
            render()
          }
        }, draft, h('div', { class: 'row gap-s' },
          h('button', { type: 'submit', class: 'btn btn-primary btn-s', dataset: { role: 'save' } }, 'Save'),
          h('button', { type: 'button', class: 'btn btn-s', onclick: () => { editing.delete(id); render() } }, 'Cancel')))
      } else {
        content = h('p', { class: 'reply-text' }, body)
      }
      let actions = null
      if (own && !editing.has(id)) {
        actions = confirming.has(id)
          ? h('div', { class: 'reply-actions' },
            h('button', {
              type: 'button',
              class: 'btn btn-danger btn-s',
              dataset: { role: 'confirm-delete' },
              onclick: () => {
                const i = indexOf(id)
                if (i >= 0) array.delete(i, 1)
                confirming.delete(id)
                announce(`${noun} deleted`)
                form.querySelector('textarea').focus()
              }
            }, 'Delete'),
            h('button', { type: 'button', class: 'btn btn-s', dataset: { role: 'cancel-delete' }, onclick: () => { confirming.delete(id); render() } }, 'Keep'))
          : h('div', { class: 'reply-actions' },
            h('button', {
              type: 'button',
              class: 'btn btn-ghost btn-s',
              'aria-label': `Edit ${noun}`,
              dataset: { role: 'edit' },
              onclick: () => {
                editing.set(id, h('textarea', { class: 'input', rows: 2, 'aria-label': `Edit ${noun}`, value: body, dataset: { role: 'draft' } }))
                render()
                editing.get(id)?.focus()
              }
            }, 'Edit'),
            h('button', {
              type: 'button',
              class: 'btn btn-ghost btn-s',
              'aria-label': `Delete ${noun}`,
              dataset: { role: 'delete' },
              onclick: () => { confirming.add(id); render() }
            }, 'Delete'))
      }
      return h('li', { class: 'reply', dataset: { replyId: id } },
        avatar(who),
        h('div', { class: 'reply-main' }, meta, content, actions))
    }))
    if (items.length === 0) list.append(h('li', { class: 'empty-note' }, `No ${noun === 'reply' ? 'replies' : noun + 's'} yet.`))
    // Keep keyboard focus across re-renders.
    if (focusedId && focusedRole) {
      const again = list.querySelector(`[data-reply-id="${CSS.escape(focusedId)}"] [data-role="${CSS.escape(focusedRole)}"]`)
      again?.focus()
    }
  }

  const observer = () => render()
  array.observeDeep(observer)
  render()
  const el = h('section', { class: 'thread', 'aria-label': title },
    h('h2', { class: 'section-title' }, title, ' ', count), list, form)
  return { el, destroy: () => array.unobserveDeep(observer) }
}
