// The device page of the noxy dev relay: be a `browser` device, see each decision delivered
// to it (decrypted by the relay with the device's key) and approve or reject it.
//
// Safety: every piece of text from the relay (payloads, ids, errors) reaches the DOM through
// textContent or a text node, never as HTML; the Content-Security-Policy requires Trusted
// Types, so assigning an HTML string to an element would throw. The access token comes from
// the URL's fragment (#token=…), is kept in sessionStorage and sent as
// `Authorization: Bearer` on every API call; the page never sees an app token.
'use strict';

(() => {
  const TOKEN_KEY = 'noxy-devrelay-token';
  const DEVICE_KEY = 'noxy-devrelay-device';
  const SOON_MS = 30000;
  const byId = (id) => document.getElementById(id);

  // ---- storage (sessionStorage may be unavailable: then memory only) ----

  const memory = new Map();
  const store = {
    get(key) {
      try {
        return window.sessionStorage.getItem(key);
      } catch (_) {
        return memory.has(key) ? memory.get(key) : null;
      }
    },
    set(key, value) {
      memory.set(key, value);
      try {
        window.sessionStorage.setItem(key, value);
      } catch (_) {
        /* memory only */
      }
    },
    remove(key) {
      memory.delete(key);
      try {
        window.sessionStorage.removeItem(key);
      } catch (_) {
        /* memory only */
      }
    },
  };

  // ---- the access token ----

  let token = null;

  /** Takes the token (and a device to be, if given) out of the URL's fragment
   * (#token=…&device=…) and the address bar; otherwise the token comes from storage. */
  function readToken() {
    const fragment = new URLSearchParams(window.location.hash.replace(/^#/, ''));
    const fromUrl = fragment.get('token');
    const device = fragment.get('device');
    if (fromUrl !== null || device !== null) {
      window.history.replaceState(null, '', window.location.pathname + window.location.search);
    }
    if (device) store.set(DEVICE_KEY, device);
    if (fromUrl) {
      store.set(TOKEN_KEY, fromUrl);
      return fromUrl;
    }
    return store.get(TOKEN_KEY);
  }

  // ---- the relay's API ----

  class ApiError extends Error {
    constructor(status, message, body) {
      super(message);
      this.name = 'ApiError';
      this.status = status;
      this.body = body;
    }
  }

  async function api(method, path, body, signal) {
    const headers = { Authorization: `Bearer ${token}` };
    const init = {
      method,
      headers,
      signal,
      cache: 'no-store',
      credentials: 'omit',
      redirect: 'error',
      referrerPolicy: 'no-referrer',
    };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    let data = null;
    try {
      data = await response.json();
    } catch (_) {
      data = null;
    }
    if (!response.ok) {
      const message = data && typeof data.error === 'string' ? data.error : `HTTP ${response.status}`;
      throw new ApiError(response.status, message, data);
    }
    return data;
  }

  const enc = encodeURIComponent;

  // ---- DOM helpers: text only ----

  /** An element with properties (class, text, attributes, on<event>) and children (nodes or
   * strings, which become text nodes). */
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'class') node.className = value;
      else if (key === 'text') node.textContent = value;
      else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? '' : String(value));
    }
    for (const child of children) {
      if (child !== null && child !== undefined && child !== false) node.append(child);
    }
    return node;
  }

  /** Runs `update`, then gives the focus back to the element with the same data-key, so a
   * live update never takes the keyboard's place away. */
  function keepingFocus(container, update) {
    const active = document.activeElement;
    const key = active && container.contains(active) ? active.getAttribute('data-key') : null;
    update();
    if (key !== null && !container.contains(active)) {
      for (const candidate of container.querySelectorAll('[data-key]')) {
        if (candidate.getAttribute('data-key') === key) {
          candidate.focus();
          break;
        }
      }
    }
  }

  let statusText = '';
  function setStatus(text, kind) {
    const status = byId('status');
    if (text !== statusText) {
      status.textContent = text;
      statusText = text;
    }
    status.className = `status${kind ? ` ${kind}` : ''}`;
  }

  function notify(text, kind) {
    const notice = byId('notice');
    notice.textContent = text;
    notice.className = `notice${kind ? ` ${kind}` : ''}`;
  }

  function showView(name) {
    for (const view of ['token', 'picker', 'device']) {
      byId(`${view}-view`).hidden = view !== name;
    }
  }

  function short(id) {
    return id.length > 13 ? `${id.slice(0, 13)}…` : id;
  }

  function clock(unixMs) {
    return new Date(unixMs).toLocaleTimeString([], { hour12: false });
  }

  function left(ms) {
    const s = Math.max(0, Math.ceil(ms / 1000));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const sec = String(s % 60).padStart(2, '0');
    return h > 0 ? `${h} h ${String(m).padStart(2, '0')} min` : `${m}:${sec}`;
  }

  // ---- long polling ----

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  let poller = null;

  /** Asks `path()` again and again: at once, then with ?since=<version> so that the relay
   * answers when something changed (a long poll). */
  function startPolling(path, onData, onRefused) {
    stopPolling();
    const state = { stopped: false, since: null, controller: null };
    state.stop = () => {
      state.stopped = true;
      if (state.controller) state.controller.abort();
    };
    state.refresh = () => {
      state.since = null;
      if (state.controller) state.controller.abort();
    };
    poller = state;
    (async () => {
      let backoff = 500;
      while (!state.stopped) {
        state.controller = new AbortController();
        const query = state.since === null ? '' : `?since=${state.since}`;
        try {
          const data = await api('GET', path() + query, undefined, state.controller.signal);
          if (state.stopped) return;
          state.since = data.version;
          backoff = 500;
          setStatus('Live', 'live');
          onData(data);
        } catch (error) {
          if (state.stopped) return;
          if (error.name === 'AbortError') continue;
          if (error instanceof ApiError && [401, 403, 404].includes(error.status)) {
            onRefused(error);
            return;
          }
          state.since = null;
          setStatus(`Relay unreachable (${error.message}); retrying…`, 'problem');
          await sleep(backoff);
          backoff = Math.min(backoff * 2, 8000);
        }
      }
    })();
  }

  function stopPolling() {
    if (poller) poller.stop();
    poller = null;
  }

  function refused(error) {
    if (error.status === 401) {
      store.remove(TOKEN_KEY);
      token = null;
      showToken('The relay refused the access token (it changes at every start).');
      return true;
    }
    if (error.status === 403) {
      setStatus(`Refused: ${error.message}`, 'problem');
      return true;
    }
    return false;
  }

  // ---- the token view ----

  function showToken(message) {
    stopPolling();
    showView('token');
    setStatus(message || 'An access token is needed.', 'problem');
    byId('token-input').focus();
  }

  // ---- the picker ----

  function openPicker(message) {
    store.remove(DEVICE_KEY);
    showView('picker');
    document.title = 'noxy dev relay · device page';
    if (message) setStatus(message, 'problem');
    byId('picker-heading').focus();
    startPolling(() => '/v1/page/identities', renderPicker, (error) => {
      if (!refused(error)) setStatus(error.message, 'problem');
    });
  }

  function renderPicker(data) {
    const list = byId('identity-list');
    keepingFocus(list, () => {
      const items = data.identities.map((identity) => {
        const browsers = identity.devices.filter((d) => d.browser);
        const policies = identity.devices.map((d) => {
          const what = d.policy === null ? 'registered over HTTP' : d.policy;
          return d.online ? what : `${what} (offline)`;
        });
        const key = `${identity.app_name}\u0000${identity.identity_id}`;
        const choices = browsers.map((d) =>
          el('button', {
            type: 'button',
            class: 'primary',
            'data-key': `open\u0000${d.device_id}`,
            'data-device': d.device_id,
            'aria-label': `Be browser device ${d.device_id} of ${identity.identity_id}`,
            onclick: () => openDevice(d.device_id),
            text: `Be device ${short(d.device_id)}`,
          }),
        );
        choices.push(
          el('button', {
            type: 'button',
            'data-key': `add\u0000${key}`,
            'aria-label': `Add a browser device to ${identity.identity_id}`,
            onclick: () => addBrowserDevice(identity.app_name, identity.identity_id),
            text: browsers.length ? 'Add another browser device' : 'Add a browser device',
          }),
        );
        return el(
          'li',
          { class: 'identity' },
          el('p', { class: 'name' }, identity.identity_id, el('span', { class: 'app', text: ` · ${identity.app_name}` })),
          el('p', {
            class: 'devices',
            text: policies.length
              ? `${policies.length} device${policies.length > 1 ? 's' : ''}: ${policies.join(', ')}`
              : 'no devices',
          }),
          el('div', { class: 'choices' }, ...choices),
        );
      });
      list.replaceChildren(...items);
    });
    byId('identity-empty').hidden = data.identities.length > 0;

    const select = byId('add-app');
    const chosen = select.value;
    const names = Array.from(select.options, (o) => o.value);
    if (names.join('\u0000') !== data.apps.join('\u0000')) {
      select.replaceChildren(...data.apps.map((name) => el('option', { value: name, text: name })));
      if (data.apps.includes(chosen)) select.value = chosen;
    }
  }

  async function addBrowserDevice(app, identity) {
    try {
      const created = await api(
        'POST',
        `/v1/page/apps/${enc(app)}/identities/${enc(identity)}/browser-devices`,
        {},
      );
      openDevice(created.device_id);
    } catch (error) {
      if (!(error instanceof ApiError && refused(error))) {
        setStatus(`Could not add a browser device: ${error.message}`, 'problem');
      }
    }
  }

  // ---- the device ----

  let deviceId = null;
  const pendingCards = new Map(); // decision id -> { node, deadline, timer, buttons, view }
  const historyCards = new Map(); // decision id -> node

  function openDevice(id) {
    deviceId = id;
    store.set(DEVICE_KEY, id);
    pendingCards.clear();
    historyCards.clear();
    byId('pending-list').replaceChildren();
    byId('history-list').replaceChildren();
    byId('device-heading').textContent = 'Device';
    byId('device-sub').textContent = id;
    notify('');
    showView('device');
    byId('device-heading').focus();
    startPolling(() => `/v1/page/devices/${enc(id)}/decisions`, renderDevice, (error) => {
      if (refused(error)) return;
      openPicker(`Device ${id}: ${error.message}`);
    });
  }

  function headline(view) {
    return view.title !== null ? view.title : `Decision ${short(view.decision_id)}`;
  }

  function payloadText(view) {
    return view.payload_truncated ? `${view.payload_pretty}\n… (cut: the payload is longer)` : view.payload_pretty;
  }

  function cardHead(view, titleId) {
    const parts = [];
    if (view.kind !== null) parts.push(el('p', { class: 'kind', text: view.kind }));
    parts.push(el('h4', { class: 'title', id: titleId, text: headline(view) }));
    if (view.summary !== null) parts.push(el('p', { class: 'summary', text: view.summary }));
    return parts;
  }

  function pendingCard(view) {
    const titleId = `t-${view.decision_id}`;
    const timer = el('span', { class: 'timer' });
    const buttons = [];
    if (view.error === null) {
      buttons.push(
        el('button', {
          type: 'button',
          class: 'approve',
          'data-key': `approve\u0000${view.decision_id}`,
          'aria-describedby': titleId,
          onclick: () => answer(view, 'approve'),
          text: 'Approve',
        }),
      );
    }
    buttons.push(
      el('button', {
        type: 'button',
        class: 'reject',
        'data-key': `reject\u0000${view.decision_id}`,
        'aria-describedby': titleId,
        onclick: () => answer(view, 'reject'),
        text: 'Reject',
      }),
    );
    const node = el(
      'li',
      { class: 'card pending', 'data-decision': view.decision_id, 'aria-labelledby': titleId },
      ...cardHead(view, titleId),
      el('p', { class: 'meta' }, timer, ` · received ${clock(view.delivered_at_unix_ms)}`),
      el('p', { class: 'meta' }, 'decision ', el('code', { text: view.decision_id })),
      view.error !== null
        ? el('p', { class: 'error', text: `This device could not decrypt it: ${view.error}` })
        : null,
      view.error === null ? el('p', { class: 'payload-label', text: 'Payload (decrypted JSON)' }) : null,
      view.error === null
        ? el('pre', { class: 'payload', tabindex: 0, 'aria-label': 'Payload, decrypted JSON' }, payloadText(view))
        : null,
      el('div', { class: 'actions' }, ...buttons),
    );
    return { node, timer, buttons, deadline: 0, view, sending: false };
  }

  function historyCard(view) {
    const titleId = `h-${view.decision_id}`;
    const outcome = view.outcome.toLowerCase();
    let who;
    if (view.outcome === 'EXPIRED') who = 'nobody answered in time';
    else if (view.answered_here) who = 'answered on this device';
    else who = `answered on device ${view.answered_by || 'unknown'}`;
    return el(
      'li',
      {
        class: `card done outcome-${outcome}`,
        'data-decision': view.decision_id,
        'data-outcome': view.outcome,
        'aria-labelledby': titleId,
      },
      el('p', { class: 'meta' }, el('span', { class: `badge ${outcome}`, text: view.outcome }), who),
      ...cardHead(view, titleId),
      el('p', { class: 'meta' }, `received ${clock(view.delivered_at_unix_ms)} · decision `, el('code', { text: view.decision_id })),
      view.error !== null
        ? el('p', { class: 'error', text: `This device could not decrypt it: ${view.error}` })
        : el(
            'details',
            {},
            el('summary', { text: 'Payload (decrypted JSON)' }),
            el('pre', { class: 'payload', tabindex: 0, 'aria-label': 'Payload, decrypted JSON' }, payloadText(view)),
          ),
    );
  }

  function renderDevice(data) {
    byId('device-heading').textContent = data.identity_id;
    byId('device-sub').textContent = `${data.app_name} · browser device ${data.device_id}`;
    const now = performance.now();
    const pendingList = byId('pending-list');
    const focusWasIn = pendingList.contains(document.activeElement);
    const seen = new Set();
    const nodes = data.pending.map((view) => {
      seen.add(view.decision_id);
      let card = pendingCards.get(view.decision_id);
      if (!card) {
        card = pendingCard(view);
        pendingCards.set(view.decision_id, card);
      }
      card.deadline = now + view.expires_in_ms;
      return card.node;
    });
    for (const id of Array.from(pendingCards.keys())) {
      if (!seen.has(id)) pendingCards.delete(id);
    }
    keepingFocus(pendingList, () => {
      const current = Array.from(pendingList.children);
      if (current.length !== nodes.length || current.some((n, i) => n !== nodes[i])) {
        pendingList.replaceChildren(...nodes);
      }
    });
    if (focusWasIn && !pendingList.contains(document.activeElement)) {
      // The decision the keyboard was on moved to the history: go to the next one.
      const next = pendingList.querySelector('button:not([disabled])');
      if (next) next.focus();
      else byId('pending-heading').focus();
    }
    byId('pending-empty').hidden = data.pending_total > 0;
    byId('pending-count').textContent = data.pending_total ? `(${data.pending_total})` : '';
    const more = byId('pending-more');
    more.hidden = data.pending_total <= data.pending.length;
    more.textContent = `${data.pending_total - data.pending.length} more not shown: answer these first.`;

    const historyList = byId('history-list');
    const historyNodes = data.history.map((view) => {
      let node = historyCards.get(view.decision_id);
      if (!node) {
        node = historyCard(view);
        historyCards.set(view.decision_id, node);
      }
      return node;
    });
    const kept = new Set(data.history.map((v) => v.decision_id));
    for (const id of Array.from(historyCards.keys())) {
      if (!kept.has(id)) historyCards.delete(id);
    }
    keepingFocus(historyList, () => {
      const current = Array.from(historyList.children);
      if (current.length !== historyNodes.length || current.some((n, i) => n !== historyNodes[i])) {
        historyList.replaceChildren(...historyNodes);
      }
    });
    byId('history-empty').hidden = data.history_total > 0;
    byId('history-count').textContent = data.history_total ? `(${data.history_total})` : '';
    document.title = `${data.pending_total ? `(${data.pending_total}) ` : ''}${data.identity_id} · noxy dev relay`;
    tick();
  }

  /** Updates every pending card's time left (once a second). */
  function tick() {
    const now = performance.now();
    for (const card of pendingCards.values()) {
      const remaining = card.deadline - now;
      if (remaining <= 0) {
        card.timer.textContent = 'Expired: waiting for the relay…';
        card.timer.classList.add('soon');
        for (const button of card.buttons) button.disabled = true;
      } else {
        card.timer.textContent = `Expires in ${left(remaining)}`;
        card.timer.classList.toggle('soon', remaining < SOON_MS);
        for (const button of card.buttons) button.disabled = card.sending;
      }
    }
  }

  async function answer(view, verb) {
    const card = pendingCards.get(view.decision_id);
    if (card) {
      card.sending = true;
      for (const button of card.buttons) button.disabled = true;
    }
    const what = headline(view);
    try {
      const result = await api(
        'POST',
        `/v1/devices/${enc(deviceId)}/decisions/${enc(view.decision_id)}`,
        { answer: verb },
      );
      notify(`${result.outcome === 'APPROVED' ? 'Approved' : 'Rejected'}: ${what}`);
    } catch (error) {
      if (error instanceof ApiError && refused(error)) return;
      if (error instanceof ApiError && error.status === 409 && error.body && error.body.outcome) {
        notify(`Too late: “${what}” is already ${String(error.body.outcome).toLowerCase()}.`, 'problem');
      } else {
        notify(`Could not send the answer: ${error.message}`, 'problem');
        if (card) card.sending = false;
        tick();
      }
    }
    if (poller) poller.refresh();
  }

  // ---- start ----

  function start() {
    byId('token-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const value = byId('token-input').value.trim();
      if (!value) return;
      byId('token-input').value = '';
      token = value;
      store.set(TOKEN_KEY, value);
      openPicker();
    });
    byId('add-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const identity = byId('add-identity').value.trim();
      const app = byId('add-app').value;
      if (!identity || !app) return;
      addBrowserDevice(app, identity);
    });
    byId('switch-device').addEventListener('click', () => openPicker());
    window.setInterval(tick, 1000);

    token = readToken();
    if (!token) {
      showToken();
      return;
    }
    const device = store.get(DEVICE_KEY);
    if (device) openDevice(device);
    else openPicker();
  }

  start();
})();
