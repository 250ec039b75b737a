// The formatting toolbar over a note body, shared by both editors (ProseMirror + y-prosemirror on
// y-websocket, Tiptap on Hocuspocus): one tab stop for the whole bar, arrows move between its
// buttons, `aria-pressed` tells which marks and blocks are active at the caret.

import { h } from './ui.js'

/**
 * Builds the toolbar for `tools` ({ label, key, text, cls, run(), active(state) } or { sep: true }).
 * `focus()` gives the keyboard back to the editor after a click. Returns { el, update() }.
 */
export function createToolbar (tools, focus) {
  const el = h('div', { class: 'toolbar', role: 'toolbar', 'aria-label': 'Formatting' })
  const buttons = []
  for (const tool of tools) {
    if (tool.sep) { el.append(h('span', { class: 'toolbar-sep', 'aria-hidden': 'true' })); continue }
    const button = h('button', {
      type: 'button',
      class: `tool ${tool.cls || ''}`.trim(),
      'aria-label': tool.label,
      title: `${tool.label} (${tool.key})`,
      tabindex: buttons.length === 0 ? '0' : '-1',
      onmousedown: e => e.preventDefault(), // keep the editor's selection
      onclick: () => {
        tool.run()
        focus()
      },
      // The glyph is drawn by CSS (`::before`): "1." as text would not be part of the
      // accessible name "Numbered list", which WCAG's label-in-name wants.
      'data-glyph': tool.text
    })
    if (tool.active) button.setAttribute('aria-pressed', 'false')
    el.append(button)
    buttons.push({ button, tool })
  }
  el.addEventListener('keydown', e => {
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
  return {
    el,
    /** Refreshes the pressed states; `state` is handed to each tool's active(state). */
    update (state) {
      for (const { button, tool } of buttons) {
        if (tool.active) button.setAttribute('aria-pressed', String(!!tool.active(state)))
      }
    }
  }
}

/** The placeholder text of an empty note body. */
export const BODY_PLACEHOLDER = 'Write something… everyone here sees it as you type.'
