// Contacts: a form whose fields are Y.Texts (`fields`: name, email, phone, company, notes; `custom`:
// label → Y.Text). Each input is bound with minimal diffs, so two people typing in the same field
// merge instead of overwriting. While you type, your awareness carries `typing: {field, at}`;
// the others show "Ada is typing…" next to that field until ~3 s pass without a keystroke.

import * as Y from 'yjs'
import { h, mount, newId, announce, ink } from './ui.js'
import { openDoc, release, setFocus, writeSummary, presence, forgetLocal } from './sync.js'
import { bindText } from './bind-text.js'
import { splitLayout, indexList, trackUpdates, emptyPane, guardExistence, confirmButton, deleteDocument } from './common.js'

const FIELDS = [
  { key: 'name', label: 'Name', autocomplete: 'name' },
  { key: 'email', label: 'Email', autocomplete: 'email', inputmode: 'email' },
  { key: 'phone', label: 'Phone', autocomplete: 'tel', inputmode: 'tel' },
  { key: 'company', label: 'Company', autocomplete: 'organization' },
  { key: 'notes', label: 'Notes', multiline: true }
]

/** How long a typing mark lasts after the last keystroke. */
const TYPING_MS = 3000

export function contactsScreen (main, params, ctx) {
  const { shared } = ctx
  const cleanups = []
  const actions = h('form', {
    class: 'new-form',
    onsubmit: e => {
      e.preventDefault()
      const id = newId()
      const entry = openDoc(`contacts/${id}`)
      entry.doc.transact(() => {
        const fields = entry.doc.getMap('fields')
        for (const f of FIELDS) fields.set(f.key, new Y.Text())
        entry.doc.getMap('custom')
      })
      writeSummary(shared.doc, 'contacts', id, { title: '', updated: Date.now() })
      release(entry)
      sessionStorage.setItem('tandem.focusField', id)
      announce('Contact created')
      location.hash = `#/contacts/${id}`
    }
  }, h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'new-contact' }, '+ New contact'))

  const list = indexList({
    sources: [{ doc: shared.doc, map: 'contacts', href: row => `#/contacts/${encodeURIComponent(row.id)}` }],
    selected: params.id ? { id: params.id, private: false } : null,
    label: 'All contacts',
    empty: 'No contacts yet.',
    untitled: 'Unnamed contact'
  })
  cleanups.push(list.destroy)

  let pane
  if (params.id) {
    const view = contactView(params.id, ctx)
    cleanups.push(view.destroy)
    pane = view.el
  } else {
    setFocus(shared)
    pane = emptyPane('☺', 'Pick a contact', 'Everyone editing a contact sees who is typing in which field.',
      h('button', { type: 'button', class: 'btn', onclick: () => actions.requestSubmit() }, 'Add a contact'))
  }
  mount(main, splitLayout({ title: 'Contacts', actions, list, pane, back: params.id ? '#/contacts' : null }))
  if (params.id && sessionStorage.getItem('tandem.focusField') === params.id) {
    sessionStorage.removeItem('tandem.focusField')
    main.querySelector('#field-name')?.focus()
  }
  return () => cleanups.forEach(fn => fn())
}

function contactView (id, ctx) {
  const { shared } = ctx
  const entry = openDoc(`contacts/${id}`)
  setFocus(entry)
  const { doc, awareness } = entry
  const fields = doc.getMap('fields')
  const custom = doc.getMap('custom')

  // --- typing marks (awareness) -------------------------------------------------------------
  let typingTimer = null
  const markTyping = field => {
    awareness.setLocalStateField('typing', { field, at: Date.now() })
    clearTimeout(typingTimer)
    typingTimer = setTimeout(() => awareness.setLocalStateField('typing', null), TYPING_MS)
  }
  // When did we last see each remote client's mark change? Our clock, not theirs.
  const seen = new Map() // clientID -> { field, at, seenAt }
  const indicators = new Map() // field -> element
  const renderTyping = () => {
    const now = Date.now()
    const byField = new Map()
    for (const row of presence(entry)) {
      if (row.self) continue
      const mark = row.state.typing
      if (!mark?.field) { seen.delete(row.clientID); continue }
      const last = seen.get(row.clientID)
      if (!last || last.field !== mark.field || last.at !== mark.at) seen.set(row.clientID, { field: mark.field, at: mark.at, seenAt: now })
      const s = seen.get(row.clientID)
      if (now - s.seenAt > TYPING_MS) continue
      if (!byField.has(mark.field)) byField.set(mark.field, [])
      byField.get(mark.field).push(row.user)
    }
    for (const [field, el] of indicators) {
      const users = byField.get(field) || []
      const text = users.length === 0
        ? ''
        : users.length === 1
          ? `${users[0].name} is typing…`
          : `${users.slice(0, -1).map(u => u.name).join(', ')} and ${users[users.length - 1].name} are typing…`
      if (el.textContent !== text) {
        el.textContent = text
        el.style.setProperty('--typing-color', users[0] ? ink(users[0].color) : 'transparent')
        el.classList.toggle('active', users.length > 0)
      }
    }
  }
  awareness.on('change', renderTyping)
  const typingTicker = setInterval(renderTyping, 500)

  // --- fields --------------------------------------------------------------------------------
  const unbinders = new Map()
  const fieldRow = (key, label, { multiline, autocomplete, inputmode, removable } = {}) => {
    const fieldId = `field-${key.replace(/[^a-z0-9]/gi, '_')}`
    const input = multiline
      ? h('textarea', { id: fieldId, class: 'input', rows: 4, dataset: { field: key } })
      : h('input', { id: fieldId, class: 'input', type: 'text', autocomplete: autocomplete || 'off', inputmode: inputmode || false, dataset: { field: key } })
    input.disabled = true
    const typing = h('span', { class: 'typing', 'aria-live': 'polite', dataset: { typingFor: key } })
    indicators.set(key, typing)
    return {
      key,
      input,
      el: h('div', { class: `form-row ${multiline ? 'form-row-wide' : ''}` },
        h('div', { class: 'label-line' },
          h('label', { for: fieldId, class: 'field-label' }, label),
          typing,
          // Removing a field removes it for everyone, with what was typed in it: ask first.
          removable
            ? confirmButton({
              label: 'Remove',
              question: `Remove “${label}” for everyone?`,
              confirm: 'Remove field',
              run: () => custom.delete(key.slice(7))
            })
            : null),
        input)
    }
  }

  const bound = new Map() // key -> the Y.Text its input is bound to
  const bind = (row, ytext) => {
    if (bound.get(row.key) === ytext && ytext) return
    unbinders.get(row.key)?.()
    unbinders.delete(row.key)
    bound.delete(row.key)
    if (!(ytext instanceof Y.Text)) { row.input.disabled = true; return }
    row.input.disabled = false
    bound.set(row.key, ytext)
    unbinders.set(row.key, bindText(row.input, ytext, { onLocalInput: () => markTyping(row.key) }))
  }

  const standard = FIELDS.map(f => fieldRow(f.key, f.label, f))
  const bindStandard = () => { for (const row of standard) bind(row, fields.get(row.key)) }
  bindStandard()
  fields.observe(bindStandard)

  // Fields that are missing once the document is synced with the server get created (older or
  // foreign contacts). Never before that sync: a field is a Y.Text inside a Y.Map, and two
  // replicas that each create one for the same key conflict as map entries — one of the texts,
  // with everything typed into it, would silently lose. The creator makes all fields at once.
  const ensure = () => {
    // Only a contact that exists: a mistyped link must not create one.
    if (!entry.synced || (fields.size === 0 && custom.size === 0)) return
    const missing = FIELDS.filter(f => !(fields.get(f.key) instanceof Y.Text))
    if (missing.length) doc.transact(() => missing.forEach(f => fields.set(f.key, new Y.Text())))
  }
  entry.provider.on('sync', ensure)
  if (entry.synced) ensure()

  const customHost = h('div', { class: 'form-grid' })
  let customRows = []
  const renderCustom = () => {
    const focused = document.activeElement?.dataset?.field
    for (const row of customRows) { unbinders.get(row.key)?.(); unbinders.delete(row.key); bound.delete(row.key); indicators.delete(row.key) }
    customRows = Array.from(custom.keys()).sort().map(label => {
      const row = fieldRow(`custom:${label}`, label, { removable: true })
      bind(row, custom.get(label))
      return row
    })
    customHost.replaceChildren(...customRows.map(r => r.el))
    if (focused?.startsWith('custom:')) customHost.querySelector(`[data-field="${CSS.escape(focused)}"]`)?.focus()
    renderTyping()
  }
  custom.observe(renderCustom)
  renderCustom()

  const newLabel = h('input', { id: 'new-field-label', class: 'input', placeholder: 'e.g. Birthday', maxLength: 40 })
  const addField = h('form', {
    class: 'add-field',
    onsubmit: e => {
      e.preventDefault()
      const label = newLabel.value.trim()
      if (!label) { newLabel.focus(); return }
      if (!custom.has(label)) custom.set(label, new Y.Text())
      newLabel.value = ''
      customHost.querySelector(`[data-field="${CSS.escape('custom:' + label)}"]`)?.focus()
    }
  }, h('label', { for: 'new-field-label', class: 'field-label' }, 'Add a field'),
  h('div', { class: 'row gap-s' }, newLabel, h('button', { type: 'submit', class: 'btn' }, 'Add field')))

  // --- index summary ---------------------------------------------------------------------------
  const nameText = () => (fields.get('name') instanceof Y.Text ? fields.get('name').toString() : '')
  const stopTracking = trackUpdates(entry, now => {
    writeSummary(shared.doc, 'contacts', id, { title: nameText(), updated: now })
  }, { every: 800 })
  const heal = () => {
    if (!entry.synced) return
    const row = shared.doc.getMap('contacts').get(id)
    if (fields.size > 0 && (!(row instanceof Y.Map) || row.get('title') !== nameText())) {
      writeSummary(shared.doc, 'contacts', id, { title: nameText(), updated: Date.now() })
    }
  }
  entry.provider.on('sync', heal)

  const remove = confirmButton({
    label: 'Delete',
    testid: 'delete',
    question: 'Delete this contact for everyone?',
    confirm: 'Delete contact',
    run: async () => {
      await deleteDocument(`contacts/${encodeURIComponent(id)}`, 'contact')
      forgetLocal(entry)
      location.hash = '#/contacts'
    }
  })
  const heading = h('h2', { class: 'pane-title' })
  const renderHeading = () => { heading.textContent = nameText().trim() || 'New contact' }
  fields.observeDeep(renderHeading)
  renderHeading()
  const el = h('section', { class: 'pane contact-pane', 'aria-label': 'Contact' },
    h('div', { class: 'doc' },
      h('div', { class: 'pane-head' }, heading, remove),
      h('form', { class: 'form-grid', onsubmit: e => e.preventDefault(), 'aria-label': 'Contact details' }, standard.map(r => r.el)),
      h('h3', { class: 'section-title' }, 'More fields'),
      customHost,
      addField))
  const stopGuard = guardExistence(entry, () => fields.size > 0 || custom.size > 0, el)

  return {
    el,
    destroy () {
      stopGuard()
      clearTimeout(typingTimer)
      clearInterval(typingTicker)
      awareness.setLocalStateField('typing', null)
      awareness.off('change', renderTyping)
      fields.unobserve(bindStandard)
      fields.unobserveDeep(renderHeading)
      custom.unobserve(renderCustom)
      entry.provider.off('sync', ensure)
      entry.provider.off('sync', heal)
      stopTracking()
      for (const off of unbinders.values()) off()
      release(entry)
    }
  }
}
