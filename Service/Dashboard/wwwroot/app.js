'use strict';
// The Elastic dashboard: a single page over the HTTP API, signed in with an API key kept in this tab's session storage.
// Every value from the API is written as text (never as HTML), and live updates come from the job's server-sent events,
// read with fetch so that the key travels in the Authorization header rather than in a URL.

const keyName = 'elastic-api-key';
const main = document.getElementById('main');
let session = { key: sessionStorage.getItem(keyName), identity: null };
let page = new AbortController();

function el(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === 'class') element.className = value;
    else if (name.startsWith('on')) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value);
  }
  for (const child of children.flat()) if (child !== null && child !== undefined) element.append(child instanceof Node ? child : String(child));
  return element;
}

const svg = (tag, attributes = {}) => {
  const element = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  return element;
};

const sleep = (ms, signal) => new Promise(resolve => {
  const timer = setTimeout(resolve, ms);
  signal?.addEventListener('abort', () => { clearTimeout(timer); resolve(); });
});

async function problemOf(response) {
  try {
    const problem = await response.json();
    return problem.detail || problem.title || response.statusText;
  } catch {
    return response.statusText;
  }
}

async function api(path, signal) {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${session.key}` }, signal });
  if (response.status === 401) {
    const why = await problemOf(response);
    signOut(`Signed out: ${why}`);
    throw new Error(why);
  }
  if (!response.ok) throw new Error(await problemOf(response));
  return response.json();
}

// Reads the job's server-sent events until the job ends; a dropped stream reopens after the last event id.
async function watch(jobId, onProgress, signal) {
  let last = null;
  while (!signal.aborted) {
    try {
      const headers = { Authorization: `Bearer ${session.key}`, Accept: 'text/event-stream' };
      if (last) headers['Last-Event-ID'] = last;
      const response = await fetch(`/api/v1/jobs/${encodeURIComponent(jobId)}/watch`, { headers, signal });
      if (!response.ok) throw new Error(await problemOf(response));
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buffer += value.replaceAll('\r', '');
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let data = '';
          for (const line of block.split('\n')) {
            if (line.startsWith('data:')) data += line.slice(5).trimStart();
            else if (line.startsWith('id:')) last = line.slice(3).trim();
          }
          if (data) onProgress(JSON.parse(data));
        }
      }
    } catch (error) {
      if (signal.aborted) return;
      await sleep(1000, signal);
    }
  }
}

// Polls while the page is shown.
async function every(ms, work, signal) {
  while (!signal.aborted) {
    try {
      await work();
      document.getElementById('error')?.remove();
    } catch (error) {
      if (signal.aborted) return;
      showError(error.message);
    }
    await sleep(ms, signal);
  }
}

function showError(message) {
  const existing = document.getElementById('error');
  if (existing) existing.textContent = message;
  else main.prepend(el('div', { id: 'error', class: 'error panel', role: 'alert' }, message));
}

const badge = (kind, text) => el('span', { class: `badge ${kind}` }, text ?? kind);
const stateBadge = state => badge(`state-${state}`, state);
const number = (value, digits = 0) => value === null || value === undefined || Number.isNaN(value) ? '–' : Number(value).toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const layoutOf = plan => plan ? `dp ${plan.dp} · pp ${plan.pp} · tp ${plan.tp}${plan.ep > 1 ? ` · ep ${plan.ep}` : ''}${plan.zero > 0 ? ` · zero ${plan.zero}` : ''}` : '–';
const timeOf = iso => new Date(iso).toLocaleTimeString('en-GB', { hour12: false });

function progressBar(status) {
  const share = status.totalSteps > 0 ? Math.min(1, status.committedStep / status.totalSteps) : 0;
  return el('div', {},
    el('span', { class: 'num' }, `${number(status.committedStep)} / ${number(status.totalSteps)}`),
    el('div', { class: 'bar', role: 'progressbar', 'aria-valuenow': Math.round(share * 100) }, el('span', { style: `width:${(share * 100).toFixed(1)}%` })));
}

// ---- pages ----

function signInPage(message) {
  const input = el('input', { id: 'api-key', type: 'password', autocomplete: 'off', placeholder: 'ek_…', 'aria-label': 'API key' });
  const error = el('div', { class: 'error', role: 'alert' }, message ?? '');
  const form = el('form', {
    class: 'panel sign-in', onsubmit: async event => {
      event.preventDefault();
      session.key = input.value.trim();
      try {
        session.identity = await api('/api/v1/me');
        sessionStorage.setItem(keyName, session.key);
        if (location.hash === '#/jobs') route();
        else location.hash = '#/jobs';
      } catch (failure) {
        session.key = null;
        error.textContent = failure.message;
      }
    },
  },
  el('h1', {}, 'Sign in'),
  el('p', { class: 'muted' }, 'Use an API key (an admin makes one with elastic keys create). It stays in this tab only.'),
  input,
  el('button', { class: 'primary', type: 'submit' }, 'Sign in'),
  error);
  main.replaceChildren(form);
  input.focus();
}

function jobsPage(signal) {
  const body = el('tbody');
  const count = el('span', { class: 'muted' });
  main.replaceChildren(el('section', { class: 'panel' },
    el('h1', {}, 'Jobs ', count),
    el('table', { id: 'jobs' },
      el('thead', {}, el('tr', {}, ['Job', 'Tenant', 'State', 'Progress', 'Tokens/s', 'Devices', 'Layout', 'Loss'].map(h => el('th', {}, h)))),
      body)));
  every(2000, async () => {
    const page = await api('/api/v1/jobs?pageSize=200', signal);
    count.textContent = `(${page.jobs.length})`;
    body.replaceChildren(...page.jobs.map(job => el('tr', { 'data-job': job.jobId },
      el('td', {}, el('a', { href: `#/jobs/${encodeURIComponent(job.jobId)}` }, job.name), el('div', { class: 'muted' }, job.jobId)),
      el('td', {}, job.tenant),
      el('td', {}, stateBadge(job.state)),
      el('td', {}, progressBar(job)),
      el('td', { class: 'num' }, number(job.tokensPerSecond)),
      el('td', { class: 'num' }, job.plan ? job.plan.devices.length : '–'),
      el('td', {}, layoutOf(job.plan)),
      el('td', { class: 'num' }, number(job.lastLoss, 4)))));
    if (page.jobs.length === 0) body.replaceChildren(el('tr', {}, el('td', { colspan: 8, class: 'muted' }, 'No jobs yet: submit one with elastic submit SPEC --api URL.')));
  }, signal);
}

function lossChart(steps, heldOut) {
  const width = 640, height = 260, left = 48, right = 12, top = 12, bottom = 28;
  const chart = svg('svg', { class: 'chart', viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': 'loss by step' });
  const all = steps.map(s => s.loss).concat(heldOut.map(h => h.loss)).filter(Number.isFinite);
  if (all.length === 0) {
    const empty = svg('text', { x: left, y: height / 2 });
    empty.textContent = 'no committed step yet';
    chart.append(empty);
    return chart;
  }
  const lastStep = Math.max(1, ...steps.map(s => s.step), ...heldOut.map(h => h.step));
  const [low, high] = [Math.min(...all), Math.max(...all)];
  const span = high - low || 1;
  const x = step => left + (step / lastStep) * (width - left - right);
  const y = loss => top + (1 - (loss - low) / span) * (height - top - bottom);
  chart.append(svg('line', { class: 'axis', x1: left, y1: height - bottom, x2: width - right, y2: height - bottom }));
  chart.append(svg('line', { class: 'axis', x1: left, y1: top, x2: left, y2: height - bottom }));
  for (const [value, at] of [[high, top + 4], [low, height - bottom]]) {
    const label = svg('text', { x: 4, y: at });
    label.textContent = value.toFixed(3);
    chart.append(label);
  }
  const stepLabel = svg('text', { x: width - right - 60, y: height - 8 });
  stepLabel.textContent = `step ${lastStep}`;
  chart.append(stepLabel);
  const line = points => points.filter(p => Number.isFinite(p.loss)).map(p => `${x(p.step).toFixed(1)},${y(p.loss).toFixed(1)}`).join(' ');
  chart.append(svg('polyline', { class: 'train', points: line(steps) }));
  if (heldOut.length > 1) chart.append(svg('polyline', { class: 'held-out', points: line(heldOut) }));
  for (const h of heldOut.filter(h => Number.isFinite(h.loss))) chart.append(svg('circle', { class: 'held-out', cx: x(h.step), cy: y(h.loss), r: 3 }));
  return chart;
}

// The plan as a grid: a row per data-parallel replica, a column per (pipeline stage, tensor rank); devices are in rank
// order (replica-major, then stage, then tensor rank). Cells whose device changed since the previous plan are marked.
function layoutGrid(plan, previous, silos) {
  if (!plan) return el('p', { class: 'muted' }, 'No plan: the job holds no devices.');
  const at = (p, r, s, t) => p && r < p.dp && s < p.pp && t < p.tp ? p.devices[r * p.pp * p.tp + s * p.tp + t] : null;
  const same = (a, b) => a && b && a.silo === b.silo && a.device === b.device;
  const head = el('tr', {}, el('th', {}, ''));
  for (let s = 0; s < plan.pp; s++) for (let t = 0; t < plan.tp; t++) head.append(el('th', {}, `stage ${s} · tp ${t}`));
  const rows = [];
  for (let r = 0; r < plan.dp; r++) {
    const row = el('tr', {}, el('th', {}, `replica ${r}`));
    for (let s = 0; s < plan.pp; s++) for (let t = 0; t < plan.tp; t++) {
      const device = at(plan, r, s, t);
      const changed = previous && previous.generation !== plan.generation && !same(device, at(previous, r, s, t));
      row.append(el('td', { class: changed ? 'changed' : null, 'data-rank': `${r}.${s}.${t}` },
        el('span', { class: 'silo' }, silos.get(device.silo) ?? device.silo),
        el('span', { class: 'device' }, `device ${device.device} · ${device.model}`)));
    }
    rows.push(row);
  }
  return el('div', {},
    el('p', { class: 'muted' }, `generation ${plan.generation}: ${layoutOf(plan)}${previous && previous.generation !== plan.generation ? ` (changed from generation ${previous.generation}: ${layoutOf(previous)})` : ''}`),
    el('table', { class: 'layout', id: 'layout' }, el('thead', {}, head), el('tbody', {}, rows)));
}

function jobPage(jobId, signal) {
  const facts = el('div', { class: 'facts' });
  const chart = el('div', { id: 'loss-chart' });
  const timeline = el('ol', { class: 'timeline', id: 'events' });
  const grid = el('div', {});
  const title = el('h1', {}, jobId);
  main.replaceChildren(
    el('section', { class: 'panel' }, title, facts),
    el('div', { class: 'grid2' },
      el('section', { class: 'panel' }, el('h2', {}, 'Loss'),
        el('div', { class: 'legend' }, el('span', {}, el('i', { style: 'background:var(--accent)' }), 'training'), el('span', {}, el('i', { style: 'background:var(--held-out)' }), 'held-out')),
        chart),
      el('section', { class: 'panel' }, el('h2', {}, 'Events'), timeline)),
    el('section', { class: 'panel' }, el('h2', {}, 'Layout'), grid));

  const steps = [], heldOut = [];
  let status = null, previousPlan = null, shownPlan = null;
  const silos = new Map();
  api('/api/v1/cluster', signal).then(cluster => cluster.silos.forEach(s => silos.set(s.silo, s.name))).catch(() => {});

  // The plan's layout in the --plan notation (as events and `elastic plan` write it).
  const layoutText = plan => [`dp=${plan.dp}`, `pp=${plan.pp}`, `tp=${plan.tp}`, plan.ep > 1 ? `ep=${plan.ep}` : null,
    plan.virtualStages > 1 ? `v=${plan.virtualStages}` : null, plan.zero > 0 ? `zero=${plan.zero}` : null,
    plan.recompute && plan.recompute !== 'none' ? `recompute=${plan.recompute}` : null].filter(Boolean).join(',');
  const fact = (label, value, id) => el('div', {}, el('span', { class: 'label' }, label), el('span', { class: 'value', id }, value));
  const render = () => {
    title.replaceChildren(`${status.name} `, stateBadge(status.state), el('div', { class: 'muted subtitle' }, `${status.jobId} · tenant ${status.tenant}`));
    const mfu = status.mfu ?? null;
    facts.replaceChildren(...[
      fact('step', `${number(status.committedStep)} / ${number(status.totalSteps)}`, 'step'),
      fact('loss', number(status.lastLoss, 4), 'loss'),
      fact('tokens/s', number(status.tokensPerSecond)),
      mfu === null ? null : fact('MFU', `${number(mfu * 100, 1)}%`),
      fact('devices', status.plan ? status.plan.devices.length : '–'),
      status.plan ? fact('layout', layoutText(status.plan), 'layout-notation') : null,
      status.predictedStepSeconds == null ? null
        : fact('step time', `${number(status.predictedStepSeconds * 1000)} ms predicted · ${status.measuredStepSeconds == null ? '–' : number(status.measuredStepSeconds * 1000)} ms measured`, 'step-time'),
      fact('re-plans', `${status.replans} (${status.preemptions} preemptions, ${status.failures} failures)`),
      fact('last checkpoint', status.lastCheckpointStep ?? '–'),
      status.finalParameterDigest ? el('div', {}, el('span', { class: 'label' }, 'finalParameterDigest'), el('span', { class: 'digest', id: 'digest' }, status.finalParameterDigest)) : null,
      status.error ? el('div', { class: 'error' }, status.error) : null,
    ].filter(Boolean));
    chart.replaceChildren(lossChart(steps, heldOut));
    if (status.plan?.generation !== shownPlan?.generation) {
      if (shownPlan) previousPlan = shownPlan;
      shownPlan = status.plan;
    }
    grid.replaceChildren(layoutGrid(shownPlan, previousPlan, silos));
  };
  watch(jobId, progress => {
    status = progress.status;
    steps.push(...progress.steps);
    heldOut.push(...progress.heldOut);
    for (const event of progress.events)
      timeline.append(el('li', { 'data-kind': event.kind }, el('time', {}, timeOf(event.time)), badge(`kind-${event.kind}`, event.kind), el('span', { class: 'message' }, event.message)));
    timeline.scrollTop = timeline.scrollHeight;
    render();
  }, signal).catch(error => showError(error.message));
}

function clusterPage(signal) {
  const silos = el('tbody'), jobs = el('tbody'), totals = el('span', { class: 'muted' });
  main.replaceChildren(
    el('section', { class: 'panel' }, el('h1', {}, 'Cluster ', totals),
      el('table', { id: 'silos' }, el('thead', {}, el('tr', {}, ['Silo', 'Capacity', 'Devices', 'In use', 'Device', 'Memory / device', 'Data plane'].map(h => el('th', {}, h)))), silos)),
    el('section', { class: 'panel' }, el('h2', {}, 'Schedule'),
      el('table', { id: 'schedule' }, el('thead', {}, el('tr', {}, ['Job', 'Tenant', 'Priority', 'Holds', 'Share', 'Queue', 'Why'].map(h => el('th', {}, h)))), jobs)));
  every(2000, async () => {
    const cluster = await api('/api/v1/cluster', signal);
    totals.textContent = `${cluster.silos.length} silo(s), ${cluster.devices} device(s), ${cluster.devicesInUse} in use`;
    silos.replaceChildren(...cluster.silos.map(s => el('tr', {},
      el('td', {}, s.name, el('div', { class: 'muted' }, s.silo)),
      el('td', {}, badge(s.spot ? 'kind-waiting' : 'kind-planned', s.spot ? 'spot' : 'on-demand')),
      el('td', { class: 'num' }, s.devices),
      el('td', {}, `${s.devicesInUse} / ${s.devices}`, el('div', { class: 'bar' }, el('span', { style: `width:${s.devices ? (100 * s.devicesInUse / s.devices).toFixed(0) : 0}%` }))),
      el('td', {}, s.deviceModel),
      el('td', { class: 'num' }, `${number(s.deviceMemoryMiB)} MiB`),
      el('td', { class: 'muted' }, s.dataPlane))));
    jobs.replaceChildren(...cluster.jobs.map(j => el('tr', {},
      el('td', {}, el('a', { href: `#/jobs/${encodeURIComponent(j.jobId)}` }, j.jobId)),
      el('td', {}, j.standing.tenant),
      el('td', { class: 'num' }, j.standing.priority),
      el('td', { class: 'num' }, j.held),
      el('td', { class: 'num' }, j.cap),
      el('td', { class: 'num' }, j.position ?? '–'),
      el('td', { class: 'muted' }, j.note ?? ''))));
    if (cluster.jobs.length === 0) jobs.replaceChildren(el('tr', {}, el('td', { colspan: 7, class: 'muted' }, 'No job holds or waits for devices.')));
  }, signal);
}

// ---- routing and session ----

function signOut(message) {
  sessionStorage.removeItem(keyName);
  session = { key: null, identity: null };
  route(message);
}

async function route(message) {
  page.abort();
  page = new AbortController();
  const signal = page.signal;
  const signedIn = Boolean(session.key);
  document.getElementById('nav').hidden = !signedIn;
  document.getElementById('sign-out').hidden = !signedIn;
  if (!signedIn) {
    document.getElementById('identity').textContent = '';
    signInPage(typeof message === 'string' ? message : undefined);
    return;
  }
  if (!session.identity) {
    try {
      session.identity = await api('/api/v1/me', signal);
    } catch {
      return;
    }
  }
  document.getElementById('identity').textContent = `${session.identity.tenant} (${session.identity.role})`;
  const [, section, id] = (location.hash || '#/jobs').split('/');
  for (const link of document.querySelectorAll('nav a')) link.classList.toggle('active', link.dataset.page === section);
  if (section === 'jobs' && id) jobPage(decodeURIComponent(id), signal);
  else if (section === 'cluster') clusterPage(signal);
  else jobsPage(signal);
}

document.getElementById('sign-out').addEventListener('click', () => signOut());
window.addEventListener('hashchange', () => route());
route();
