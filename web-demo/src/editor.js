// The rich-text body of a note: ProseMirror bound to the note's `default` Y.XmlFragment with
// y-prosemirror (ySyncPlugin for the content, yCursorPlugin for everyone's caret and selection in
// their colour from awareness, yUndoPlugin for an undo that only undoes your own edits).
//
// Why ProseMirror + y-prosemirror rather than Tiptap: y-prosemirror is the binding Tiptap itself
// runs on, so the stored structure is identical, but the direct route costs ~10 small packages
// instead of Tiptap's tree, and the schema stays under our control. The schema below uses
// Tiptap's node and mark names (paragraph, heading, bulletList, listItem, bold, italic, ...), so
// a Tiptap client with the Collaboration extension opens the same notes unchanged, and the
// server's typed view (crdt-model, which reads paragraphs and headings) understands them too.

import { Schema } from 'prosemirror-model'
import { EditorState, Plugin } from 'prosemirror-state'
import { EditorView, Decoration, DecorationSet } from 'prosemirror-view'
import { keymap } from 'prosemirror-keymap'
import { baseKeymap, toggleMark, setBlockType, wrapIn, lift } from 'prosemirror-commands'
import { wrapInList, splitListItem, liftListItem, sinkListItem } from 'prosemirror-schema-list'
import { ySyncPlugin, yCursorPlugin, yUndoPlugin, undo, redo } from 'y-prosemirror'
import { h } from './ui.js'
import { mentionableEditor } from './people.js'

export const schema = new Schema({
  nodes: {
    doc: { content: 'block+' },
    paragraph: {
      group: 'block',
      content: 'inline*',
      parseDOM: [{ tag: 'p' }],
      toDOM: () => ['p', 0]
    },
    heading: {
      group: 'block',
      content: 'inline*',
      attrs: { level: { default: 2 } },
      defining: true,
      parseDOM: [1, 2, 3].map(level => ({ tag: `h${level}`, attrs: { level } })),
      toDOM: node => [`h${node.attrs.level}`, 0]
    },
    blockquote: {
      group: 'block',
      content: 'block+',
      defining: true,
      parseDOM: [{ tag: 'blockquote' }],
      toDOM: () => ['blockquote', 0]
    },
    codeBlock: {
      group: 'block',
      content: 'text*',
      marks: '',
      code: true,
      defining: true,
      attrs: { language: { default: null } },
      parseDOM: [{ tag: 'pre', preserveWhitespace: 'full' }],
      toDOM: () => ['pre', ['code', 0]]
    },
    bulletList: {
      group: 'block',
      content: 'listItem+',
      parseDOM: [{ tag: 'ul' }],
      toDOM: () => ['ul', 0]
    },
    orderedList: {
      group: 'block',
      content: 'listItem+',
      attrs: { start: { default: 1 } },
      parseDOM: [{ tag: 'ol', getAttrs: dom => ({ start: +(dom.getAttribute('start') || 1) }) }],
      toDOM: node => node.attrs.start === 1 ? ['ol', 0] : ['ol', { start: node.attrs.start }, 0]
    },
    listItem: {
      content: 'paragraph block*',
      defining: true,
      parseDOM: [{ tag: 'li' }],
      toDOM: () => ['li', 0]
    },
    horizontalRule: {
      group: 'block',
      parseDOM: [{ tag: 'hr' }],
      toDOM: () => ['hr']
    },
    text: { group: 'inline' },
    hardBreak: {
      inline: true,
      group: 'inline',
      selectable: false,
      parseDOM: [{ tag: 'br' }],
      toDOM: () => ['br']
    }
  },
  marks: {
    bold: {
      parseDOM: [{ tag: 'strong' }, { tag: 'b' }, { style: 'font-weight=bold' }],
      toDOM: () => ['strong', 0]
    },
    italic: {
      parseDOM: [{ tag: 'em' }, { tag: 'i' }, { style: 'font-style=italic' }],
      toDOM: () => ['em', 0]
    },
    strike: {
      parseDOM: [{ tag: 's' }, { tag: 'del' }],
      toDOM: () => ['s', 0]
    },
    code: {
      parseDOM: [{ tag: 'code' }],
      toDOM: () => ['code', 0]
    },
    link: {
      attrs: { href: {} },
      inclusive: false,
      parseDOM: [{ tag: 'a[href]', getAttrs: dom => ({ href: dom.getAttribute('href') }) }],
      toDOM: node => ['a', { href: node.attrs.href, rel: 'noopener noreferrer nofollow' }, 0]
    }
  }
})

const { nodes, marks } = schema

/** Shows a placeholder while the body is a single empty paragraph. */
function placeholder (text) {
  return new Plugin({
    props: {
      decorations (state) {
        const { doc } = state
        if (doc.childCount !== 1 || !doc.firstChild.isTextblock || doc.firstChild.content.size > 0) return null
        return DecorationSet.create(doc, [
          Decoration.node(0, doc.firstChild.nodeSize, { class: 'is-empty', 'data-placeholder': text })
        ])
      }
    }
  })
}

/** The caret of a collaborator: a bar in their colour with their name above it. */
function cursorBuilder (user) {
  const cursor = document.createElement('span')
  cursor.className = 'ProseMirror-yjs-cursor'
  cursor.style.borderColor = user.color
  const label = document.createElement('div')
  label.style.backgroundColor = user.color
  label.textContent = user.name
  cursor.append(document.createTextNode('\u2060'), label, document.createTextNode('\u2060'))
  return cursor
}

function selectionBuilder (user) {
  return { style: `background-color: ${user.color}33`, class: 'ProseMirror-yjs-selection' }
}

function isMarkActive (state, type) {
  const { from, $from, to, empty } = state.selection
  if (empty) return !!type.isInSet(state.storedMarks || $from.marks())
  return state.doc.rangeHasMark(from, to, type)
}

function isBlockActive (state, type, attrs = {}) {
  const { $from } = state.selection
  for (let d = $from.depth; d > 0; d--) {
    const node = $from.node(d)
    if (node.type === type && Object.entries(attrs).every(([k, v]) => node.attrs[k] === v)) return true
  }
  return false
}

function toggleHeading (level) {
  return (state, dispatch) => isBlockActive(state, nodes.heading, { level })
    ? setBlockType(nodes.paragraph)(state, dispatch)
    : setBlockType(nodes.heading, { level })(state, dispatch)
}

function toggleList (type) {
  return (state, dispatch) => isBlockActive(state, type)
    ? liftListItem(nodes.listItem)(state, dispatch)
    : wrapInList(type)(state, dispatch)
}

function toggleQuote (state, dispatch) {
  return isBlockActive(state, nodes.blockquote) ? lift(state, dispatch) : wrapIn(nodes.blockquote)(state, dispatch)
}

const TOOLS = [
  { label: 'Bold', key: 'Ctrl+B', text: 'B', cls: 'tool-bold', run: toggleMark(marks.bold), active: s => isMarkActive(s, marks.bold) },
  { label: 'Italic', key: 'Ctrl+I', text: 'I', cls: 'tool-italic', run: toggleMark(marks.italic), active: s => isMarkActive(s, marks.italic) },
  { label: 'Strikethrough', key: 'Ctrl+Shift+S', text: 'S', cls: 'tool-strike', run: toggleMark(marks.strike), active: s => isMarkActive(s, marks.strike) },
  { label: 'Inline code', key: 'Ctrl+E', text: '</>', run: toggleMark(marks.code), active: s => isMarkActive(s, marks.code) },
  { sep: true },
  { label: 'Heading', key: 'Ctrl+Alt+2', text: 'H', run: toggleHeading(2), active: s => isBlockActive(s, nodes.heading, { level: 2 }) },
  { label: 'Bulleted list', key: 'Ctrl+Shift+8', text: '•', run: toggleList(nodes.bulletList), active: s => isBlockActive(s, nodes.bulletList) },
  { label: 'Numbered list', key: 'Ctrl+Shift+7', text: '1.', run: toggleList(nodes.orderedList), active: s => isBlockActive(s, nodes.orderedList) },
  { label: 'Quote', key: 'Ctrl+Shift+B', text: '❝', run: toggleQuote, active: s => isBlockActive(s, nodes.blockquote) },
  { sep: true },
  { label: 'Undo', key: 'Ctrl+Z', text: '↶', run: undo },
  { label: 'Redo', key: 'Ctrl+Shift+Z', text: '↷', run: redo }
]

/**
 * Mounts an editor for `fragment` (the note's `default` Y.XmlFragment) in `host`.
 * Returns { view, destroy }.
 */
export function createEditor (host, fragment, awareness, { label = 'Note body' } = {}) {
  const toolbar = h('div', { class: 'toolbar', role: 'toolbar', 'aria-label': 'Formatting' })
  const area = h('div', { class: 'editor-area' })
  host.append(toolbar, area)

  const buttons = []
  for (const tool of TOOLS) {
    if (tool.sep) { toolbar.append(h('span', { class: 'toolbar-sep', 'aria-hidden': 'true' })); continue }
    const button = h('button', {
      type: 'button',
      class: `tool ${tool.cls || ''}`.trim(),
      'aria-label': tool.label,
      title: `${tool.label} (${tool.key})`,
      tabindex: buttons.length === 0 ? '0' : '-1',
      onmousedown: e => e.preventDefault(), // keep the editor's selection
      onclick: () => {
        tool.run(view.state, view.dispatch, view)
        view.focus()
      }
    }, tool.text)
    if (tool.active) button.setAttribute('aria-pressed', 'false')
    toolbar.append(button)
    buttons.push({ button, tool })
  }
  // Roving tab index: one tab stop for the toolbar, arrows move between its buttons.
  toolbar.addEventListener('keydown', e => {
    const list = buttons.map(b => b.button)
    const i = list.indexOf(document.activeElement)
    if (i < 0) return
    let next = null
    if (e.key === 'ArrowRight') next = (i + 1) % list.length
    else if (e.key === 'ArrowLeft') next = (i - 1 + list.length) % list.length
    else if (e.key === 'Home') next = 0
    else if (e.key === 'End') next = list.length - 1
    if (next === null) return
    e.preventDefault()
    list[i].tabIndex = -1
    list[next].tabIndex = 0
    list[next].focus()
  })

  const updateToolbar = state => {
    for (const { button, tool } of buttons) {
      if (tool.active) button.setAttribute('aria-pressed', String(!!tool.active(state)))
    }
  }

  const state = EditorState.create({
    schema,
    plugins: [
      ySyncPlugin(fragment),
      yCursorPlugin(awareness, { cursorBuilder, selectionBuilder }),
      yUndoPlugin(),
      keymap({
        'Mod-z': undo,
        'Mod-y': redo,
        'Mod-Shift-z': redo,
        'Mod-b': toggleMark(marks.bold),
        'Mod-i': toggleMark(marks.italic),
        'Mod-Shift-s': toggleMark(marks.strike),
        'Mod-e': toggleMark(marks.code),
        'Mod-Alt-1': toggleHeading(1),
        'Mod-Alt-2': toggleHeading(2),
        'Mod-Alt-0': setBlockType(nodes.paragraph),
        'Mod-Shift-8': toggleList(nodes.bulletList),
        'Mod-Shift-7': toggleList(nodes.orderedList),
        'Mod-Shift-b': toggleQuote,
        Enter: splitListItem(nodes.listItem),
        // Tab indents only inside a list; elsewhere it moves focus as usual.
        Tab: sinkListItem(nodes.listItem),
        'Shift-Tab': liftListItem(nodes.listItem),
        'Shift-Enter': (state, dispatch) => {
          dispatch?.(state.tr.replaceSelectionWith(nodes.hardBreak.create()).scrollIntoView())
          return true
        }
      }),
      keymap(baseKeymap),
      placeholder('Write something… everyone here sees it as you type.')
    ]
  })

  const view = new EditorView(area, {
    state,
    attributes: {
      role: 'textbox',
      'aria-multiline': 'true',
      'aria-label': label,
      class: 'prose',
      spellcheck: 'true'
    },
    // `@` offers the people of the workspace (before the keymap sees Enter or Tab).
    handleKeyDown: (_, e) => mentions?.key(e) ?? false,
    // `this`, not `view`: y-prosemirror dispatches while the view is still being constructed.
    dispatchTransaction (tr) {
      const next = this.state.apply(tr)
      this.updateState(next)
      updateToolbar(next)
      if (this.hasFocus()) mentions?.update()
    }
  })
  const mentions = mentionableEditor(view, area)
  view.dom.addEventListener('blur', () => setTimeout(mentions.hide, 150))
  updateToolbar(view.state)
  return { view, destroy: () => view.destroy() }
}
