// Issues: a board with one column per status, read from the workspace index. Status changes by
// drag and drop or with the card's select (keyboard); both write the issue document's
// `meta.status` and the index row. An issue's page has its title, description, status, priority,
// assignees, labels and a comment thread.

import * as Y from 'yjs'
import { h, mount, newId, ago, announce, avatar } from './ui.js'
import { openDoc, release, setFocus, writeSummary, summaries, person, forgetLocal } from './sync.js'
import { bindText } from './bind-text.js'
import { createThread } from './thread.js'
import { createChips } from './chips.js'
import { trackUpdates, TOUCH, searchBox, guardExistence, confirmButton, deleteDocument } from './common.js'
import { mentionable } from './people.js'

export const STATUSES = [
  { value: 'open', label: 'Open' },
  { value: 'in_progress', label: 'In progress' },
  { value: 'done', label: 'Done' },
  { value: 'cancelled', label: 'Cancelled' }
]
export const PRIORITIES = [
  { value: 'low', label: 'Low' },
  { value: 'medium', label: 'Medium' },
  { value: 'high', label: 'High' },
  { value: 'urgent', label: 'Urgent' }
]
const statusLabel = v => STATUSES.find(s => s.value === v)?.label || 'Open'

/** What the board shows of an issue, for its index row: status, priority, assignees, labels. */
function boardFields (doc) {
  const meta = doc.getMap('meta')
  const strings = name => doc.getArray(name).toArray().filter(v => typeof v === 'string')
  return {
    title: doc.getText('title').toString(),
    status: meta.get('status') || 'open',
    priority: meta.get('priority') || 'medium',
    assignees: strings('assignees'),
    labels: strings('labels')
  }
}

export function issuesScreen (main, params, ctx) {
  if (params.id) return issueView(main, params.id, ctx)
  return board(main, ctx)
}

/** Waits (bounded) until a document has its server state, or its local copy while offline. */
function whenLoaded (entry, timeoutMs = 10_000) {
  return new Promise(resolve => {
    if (entry.synced) return resolve()
    let done = false
    const finish = () => {
      if (done) return
      done = true
      entry.provider.off('sync', onSync)
      clearTimeout(timer)
      resolve()
    }
    const onSync = synced => { if (synced) finish() }
    entry.provider.on('sync', onSync)
    entry.idb.whenSynced.then(() => { if (!navigator.onLine) finish() }, () => {})
    const timer = setTimeout(finish, timeoutMs)
  })
}

/** Changes an issue's status from the board: the index row at once, the document once loaded. */
async function setStatus (ctx, id, status) {
  const now = Date.now()
  writeSummary(ctx.shared.doc, 'issues', id, { status, updated: now })
  announce(`Moved to ${statusLabel(status)}`)
  const entry = openDoc(`issues/${id}`)
  try {
    // Writing before the document is loaded would race its current status by client id, not time.
    await whenLoaded(entry)
    const meta = entry.doc.getMap('meta')
    if (meta.get('status') !== status) {
      entry.doc.transact(() => {
        meta.set('status', status)
        meta.set('updated', now)
      })
    }
    await whenLoaded(entry, 3000)
  } finally {
    release(entry)
  }
}

function createIssue (ctx) {
  const id = newId()
  const entry = openDoc(`issues/${id}`)
  const now = Date.now()
  entry.doc.transact(() => {
    entry.doc.getText('title')
    entry.doc.getText('description')
    const meta = entry.doc.getMap('meta')
    meta.set('status', 'open')
    meta.set('priority', 'medium')
    meta.set('author', ctx.user.sub)
    meta.set('created', now)
    meta.set('updated', now)
  })
  writeSummary(ctx.shared.doc, 'issues', id, { ...boardFields(entry.doc), updated: now })
  release(entry)
  sessionStorage.setItem('tandem.focusTitle', id)
  return id
}

function board (main, ctx) {
  const { shared } = ctx
  setFocus(shared)
  const issues = shared.doc.getMap('issues')
  const columns = STATUSES.map(status => {
    const list = h('ul', { class: 'column-list', 'aria-labelledby': `col-${status.value}` })
    const count = h('span', { class: 'count-badge' })
    const el = h('section', {
      class: `column column-${status.value}`,
      dataset: { status: status.value },
      'aria-labelledby': `col-${status.value}`,
      ondragover: e => { e.preventDefault(); e.dataTransfer.dropEffect = 'move'; el.classList.add('drop-target') },
      ondragleave: e => { if (!el.contains(e.relatedTarget)) el.classList.remove('drop-target') },
      ondrop: e => {
        e.preventDefault()
        el.classList.remove('drop-target')
        const id = e.dataTransfer.getData('application/x-tandem-issue') || e.dataTransfer.getData('text/plain')
        if (id && issues.has(id)) setStatus(ctx, id, status.value)
      }
    }, h('h2', { class: 'column-title', id: `col-${status.value}` }, h('span', { class: 'status-dot', 'aria-hidden': 'true' }), status.label, ' ', count), list)
    return { status, el, list, count }
  })

  let query = ''
  const search = searchBox('Issues', q => { query = q; render() })
  const matches = row => !query || [row.title || 'Untitled issue', ...(Array.isArray(row.labels) ? row.labels : []),
    ...(Array.isArray(row.assignees) ? row.assignees.map(sub => person(sub).name) : [])]
    .some(text => String(text).toLowerCase().includes(query))

  const render = () => {
    const active = document.activeElement
    const refocus = active?.dataset?.issueSelect ? { id: active.dataset.issueSelect, kind: 'select' } : null
    const rows = summaries(shared.doc, 'issues').filter(matches)
    for (const col of columns) {
      const mine = rows.filter(r => (STATUSES.some(s => s.value === r.status) ? r.status : 'open') === col.status.value)
      col.count.textContent = String(mine.length)
      col.list.replaceChildren(...mine.map(row => card(row)))
      if (mine.length === 0) col.list.append(h('li', { class: 'column-empty' }, query ? 'No matches' : 'Drop issues here'))
    }
    if (refocus) main.querySelector(`[data-issue-select="${CSS.escape(refocus.id)}"]`)?.focus()
  }

  const card = row => {
    const title = row.title?.trim() || 'Untitled issue'
    const select = h('select', {
      class: 'select select-s',
      'aria-label': `Status of ${title}`,
      dataset: { issueSelect: row.id },
      onchange: () => setStatus(ctx, row.id, select.value)
    }, STATUSES.map(s => h('option', { value: s.value, selected: s.value === (row.status || 'open') }, s.label)))
    return h('li', {
      class: 'card',
      draggable: 'true',
      dataset: { id: row.id },
      ondragstart: e => {
        e.dataTransfer.setData('application/x-tandem-issue', row.id)
        e.dataTransfer.setData('text/plain', row.id)
        e.dataTransfer.effectAllowed = 'move'
        e.currentTarget.classList.add('dragging')
      },
      ondragend: e => e.currentTarget.classList.remove('dragging')
    },
    h('a', { class: 'card-title', href: `#/issues/${encodeURIComponent(row.id)}` }, title),
    cardDetails(row),
    h('div', { class: 'card-foot' }, h('span', { class: 'muted card-time' }, ago(row.updated)), select))
  }

  // Priority, labels and assignees, as the issue's index row has them (rows written before they
  // were kept there show none until the issue is next edited or opened).
  const cardDetails = row => {
    const priority = PRIORITIES.find(p => p.value === row.priority)
    const labels = Array.isArray(row.labels) ? row.labels.filter(l => typeof l === 'string') : []
    const assignees = Array.isArray(row.assignees) ? row.assignees.filter(a => typeof a === 'string') : []
    if (!priority && labels.length === 0 && assignees.length === 0) return null
    return h('div', { class: 'card-details' },
      priority ? h('span', { class: `priority priority-${priority.value}`, 'data-testid': 'card-priority' }, priority.label) : null,
      labels.map(label => h('span', { class: 'card-label', 'data-testid': 'card-label' }, label)),
      assignees.length
        ? h('span', { class: 'avatars card-assignees', 'data-testid': 'card-assignees', 'aria-label': `Assigned to ${assignees.map(sub => person(sub).name).join(', ')}`, role: 'img' },
          assignees.slice(0, 3).map((sub, i) => {
            const a = avatar(person(sub), 'avatar-s')
            a.removeAttribute('role')
            a.removeAttribute('aria-label')
            a.style.zIndex = String(3 - i)
            return a
          }))
        : null)
  }

  const newButton = h('button', {
    type: 'button',
    class: 'btn btn-primary',
    'data-testid': 'new-issue',
    onclick: () => { location.hash = `#/issues/${createIssue(ctx)}` }
  }, '+ New issue')

  mount(main, h('div', { class: 'board-screen' },
    h('div', { class: 'board-head' },
      h('div', {}, h('h1', { class: 'board-title' }, 'Issues'),
        h('p', { class: 'muted' }, 'Drag a card to another column, or change its status with the card\'s menu.')),
      h('div', { class: 'board-actions' }, search, newButton)),
    h('div', { class: 'board' }, columns.map(c => c.el))))

  const observer = () => render()
  issues.observeDeep(observer)
  render()
  const timer = setInterval(render, 60_000)
  return () => { issues.unobserveDeep(observer); clearInterval(timer) }
}

function issueView (main, id, ctx) {
  const { shared, user } = ctx
  const entry = openDoc(`issues/${id}`)
  setFocus(entry)
  const { doc } = entry
  const title = doc.getText('title')
  const description = doc.getText('description')
  const meta = doc.getMap('meta')

  const titleInput = h('input', { class: 'title-input', 'aria-label': 'Title', placeholder: 'Untitled issue', autocomplete: 'off' })
  const unbindTitle = bindText(titleInput, title)
  const descInput = h('textarea', { id: 'issue-description', class: 'input', rows: 6, placeholder: 'What is it about? Steps, context, links…' })
  const unbindDesc = bindText(descInput, description)
  mentionable(descInput)

  const statusSelect = h('select', {
    id: 'issue-status',
    class: 'select',
    onchange: () => {
      const now = Date.now()
      doc.transact(() => { meta.set('status', statusSelect.value); meta.set('updated', now) }, TOUCH)
      writeSummary(shared.doc, 'issues', id, { ...boardFields(doc), updated: now })
    }
  }, STATUSES.map(s => h('option', { value: s.value }, s.label)))
  const prioritySelect = h('select', {
    id: 'issue-priority',
    class: 'select',
    onchange: () => doc.transact(() => { meta.set('priority', prioritySelect.value); meta.set('updated', Date.now()) })
  }, PRIORITIES.map(p => h('option', { value: p.value }, p.label)))
  const metaLine = h('p', { class: 'doc-meta' })
  const renderMeta = () => {
    statusSelect.value = meta.get('status') || 'open'
    prioritySelect.value = meta.get('priority') || 'medium'
    prioritySelect.dataset.priority = prioritySelect.value
    const author = meta.get('author')
    mount(metaLine, h('span', {}, [author ? `Opened by ${person(author).name}` : null, meta.get('updated') ? `updated ${ago(meta.get('updated'))}` : null].filter(Boolean).join(' · ')))
  }
  meta.observe(renderMeta)
  renderMeta()

  const assigneesArray = doc.getArray('assignees')
  const assignees = createChips(assigneesArray, { label: 'Assignees', placeholder: 'Add person…', format: sub => person(sub).name })
  const assignMe = h('button', {
    type: 'button',
    class: 'btn btn-s',
    onclick: () => {
      const at = assigneesArray.toArray().indexOf(user.sub)
      if (at >= 0) assigneesArray.delete(at, 1)
      else assigneesArray.push([user.sub])
    }
  })
  const renderAssignMe = () => { assignMe.textContent = assigneesArray.toArray().includes(user.sub) ? 'Unassign me' : 'Assign me' }
  assigneesArray.observe(renderAssignMe)
  renderAssignMe()
  const labels = createChips(doc.getArray('labels'), { label: 'Labels', placeholder: 'Add label…' })
  const thread = createThread(doc.getArray('comments'), { noun: 'comment', title: 'Comments' })

  const stopTracking = trackUpdates(entry, now => {
    doc.transact(() => meta.set('updated', now), TOUCH)
    writeSummary(shared.doc, 'issues', id, { ...boardFields(doc), updated: now })
  }, { every: 800 })
  const heal = () => {
    if (!entry.synced || meta.size === 0) return
    const row = shared.doc.getMap('issues').get(id)
    const fields = boardFields(doc)
    const stale = !(row instanceof Y.Map) || Object.entries(fields).some(([k, v]) => JSON.stringify(row.get(k)) !== JSON.stringify(v))
    if (stale) writeSummary(shared.doc, 'issues', id, { ...fields, updated: meta.get('updated') || Date.now() })
  }
  entry.provider.on('sync', heal)

  const remove = confirmButton({
    label: 'Delete',
    testid: 'delete',
    question: 'Delete this issue for everyone?',
    confirm: 'Delete issue',
    run: async () => {
      await deleteDocument(`issues/${encodeURIComponent(id)}`, 'issue')
      forgetLocal(entry)
      location.hash = '#/issues'
    }
  })
  const screen = h('div', { class: 'issue-screen' },
    h('div', { class: 'pane-head' }, h('a', { class: 'back-link', href: '#/issues' }, '← Board'), remove),
    h('article', { class: 'doc issue-doc', 'aria-label': 'Issue' },
      h('header', { class: 'doc-head' }, titleInput, metaLine),
      h('div', { class: 'issue-grid' },
        h('div', { class: 'issue-main' },
          h('label', { for: 'issue-description', class: 'field-label' }, 'Description'),
          descInput,
          thread.el),
        h('aside', { class: 'issue-side', 'aria-label': 'Issue properties' },
          h('label', { for: 'issue-status', class: 'field-label' }, 'Status'), statusSelect,
          h('label', { for: 'issue-priority', class: 'field-label' }, 'Priority'), prioritySelect,
          h('div', { class: 'field-label' }, 'Assignees'), assignees.el, assignMe,
          h('div', { class: 'field-label' }, 'Labels'), labels.el))))
  mount(main, screen)
  const stopGuard = guardExistence(entry, () => meta.size > 0 || title.length > 0, screen)
  if (sessionStorage.getItem('tandem.focusTitle') === id) {
    sessionStorage.removeItem('tandem.focusTitle')
    titleInput.focus()
  }

  return () => {
    stopGuard()
    stopTracking()
    entry.provider.off('sync', heal)
    unbindTitle()
    unbindDesc()
    meta.unobserve(renderMeta)
    assigneesArray.unobserve(renderAssignMe)
    assignees.destroy()
    labels.destroy()
    thread.destroy()
    release(entry)
  }
}
