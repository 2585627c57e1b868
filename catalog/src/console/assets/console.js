// The Floe console: one page, views drawn by this script from the public REST and management
// APIs. Routes live in the URL's fragment (#/w/<warehouse>/t/<namespace>/<table>, #/sql, ...).
// Text from the server is only ever set as text (textContent), never parsed as HTML.
'use strict';

(function () {
  const TOKEN_KEY = 'floe.console.token';
  const UNIT_SEPARATOR = '\u001f';
  const TARGET_SETTING = 'floe.maintenance.compaction.target-file-size-bytes';
  const Charts = window.FloeCharts;

  const session = {
    token: sessionStorage.getItem(TOKEN_KEY),
    defaultWarehouse: null,
    ready: false,
  };

  class ApiError extends Error {
    constructor(status, type, message) {
      super(message);
      this.status = status;
      this.type = type;
    }
  }

  // ---- the API

  // Iceberg's snapshot ids are 64-bit; JSON.parse would round those past 2^53. Integers that a
  // JavaScript number cannot hold exactly become strings (outside JSON strings only).
  function quoteBigIntegers(text) {
    const parts = [];
    let start = 0;
    let i = 0;
    while (i < text.length) {
      const c = text[i];
      if (c === '"') {
        i += 1;
        while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
        i += 1;
      } else if (c === '-' || (c >= '0' && c <= '9')) {
        let end = i + 1;
        while (end < text.length && '0123456789eE+-.'.includes(text[end])) end += 1;
        const token = text.slice(i, end);
        if (/^-?\d+$/.test(token) && !Number.isSafeInteger(Number(token))) {
          parts.push(text.slice(start, i), `"${token}"`);
          start = end;
        }
        i = end;
      } else {
        i += 1;
      }
    }
    parts.push(text.slice(start));
    return parts.join('');
  }

  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    if (session.token) headers.Authorization = `Bearer ${session.token}`;
    let payload;
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    const response = await fetch(path, { method, headers, body: payload, credentials: 'omit', cache: 'no-store' });
    const text = await response.text();
    let json = null;
    try {
      json = text ? JSON.parse(quoteBigIntegers(text)) : null;
    } catch (_) {
      json = null;
    }
    if (!response.ok) {
      const error = (json && json.error) || {};
      if (response.status === 401) signedOut();
      throw new ApiError(response.status, error.type || 'Error', error.message || `${response.status} ${response.statusText}`);
    }
    return json;
  }

  const enc = encodeURIComponent;
  const nsPath = (levels) => enc(levels.join(UNIT_SEPARATOR));
  const nsText = (levels) => levels.join('.');

  async function listAll(path, key) {
    const found = [];
    let token = null;
    do {
      const separator = path.includes('?') ? '&' : '?';
      const page = await api('GET', token ? `${path}${separator}pageToken=${enc(token)}` : path);
      found.push(...(page[key] || []));
      token = page['next-page-token'] || null;
    } while (token);
    return found;
  }

  async function allNamespaces(warehouse) {
    const found = [];
    const queue = [null];
    while (queue.length) {
      const parent = queue.shift();
      const path = `/v1/${enc(warehouse)}/namespaces${parent ? `?parent=${nsPath(parent)}` : ''}`;
      const children = await listAll(path, 'namespaces');
      for (const child of children) {
        found.push(child);
        queue.push(child);
      }
    }
    return found.sort((a, b) => nsText(a).localeCompare(nsText(b)));
  }

  async function warehouses() {
    try {
      const listed = await api('GET', '/management/v1/warehouses');
      return { names: listed.warehouses.map((w) => w.name), details: listed.warehouses, note: null };
    } catch (err) {
      if (err.status !== 403) throw err;
      return {
        names: [session.defaultWarehouse],
        details: null,
        note: 'Listing every warehouse needs the admin privilege: showing the default one.',
      };
    }
  }

  // ---- DOM helpers

  function el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === 'class') node.className = value;
      else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? '' : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function table(headings, rows, attributes) {
    return el('table', attributes || {},
      el('thead', {}, el('tr', {}, headings.map((h) => el('th', {}, h)))),
      el('tbody', {}, rows.map((row) => el('tr', {}, row.map((cell) => el('td', {}, cell))))));
  }

  function section(title, id, ...children) {
    return el('section', { class: 'card', id }, el('h2', {}, title), ...children);
  }

  function notice(text, kind) {
    return el('p', { class: `notice ${kind || ''}` }, text);
  }

  function failure(err) {
    if (err instanceof ApiError && err.status === 403) {
      return notice(`Not allowed: ${err.message}`, 'denied');
    }
    return notice(err.message || String(err), 'error');
  }

  function show(...children) {
    const main = document.getElementById('main');
    main.replaceChildren(...children.flat().filter((child) => child !== null && child !== undefined && child !== false));
  }

  function when(ms) {
    return ms === null || ms === undefined ? '' : Charts.time(ms);
  }

  // ---- sign-in

  function signedOut() {
    session.token = null;
    session.ready = false;
    sessionStorage.removeItem(TOKEN_KEY);
    if (location.hash !== '#/sign-in') location.hash = '#/sign-in';
  }

  function principalOf(token) {
    try {
      const payload = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      return JSON.parse(atob(payload)).sub || null;
    } catch (_) {
      return null;
    }
  }

  function renderHeader() {
    const signedIn = Boolean(session.token);
    document.getElementById('nav').hidden = !session.ready;
    document.getElementById('sign-out').hidden = !signedIn;
    document.getElementById('who').textContent = signedIn ? `signed in as ${principalOf(session.token) || 'token holder'}` : '';
    const section = location.hash.startsWith('#/sql') ? 'sql' : location.hash.startsWith('#/server') ? 'server' : 'warehouses';
    for (const link of document.querySelectorAll('#nav a')) {
      link.classList.toggle('current', link.dataset.section === section);
    }
  }

  async function acceptToken(token) {
    session.token = token;
    const config = await api('GET', '/v1/config');
    sessionStorage.setItem(TOKEN_KEY, token);
    session.defaultWarehouse = config.overrides.prefix;
    session.ready = true;
    location.hash = '#/';
  }

  function signInPage() {
    const message = el('div', { id: 'sign-in-message' });
    const clientId = el('input', { id: 'client-id', name: 'client-id', autocomplete: 'username', required: true });
    const secret = el('input', { id: 'client-secret', name: 'client-secret', type: 'password', autocomplete: 'current-password', required: true });
    const pasted = el('textarea', { id: 'token', name: 'token', rows: 3 });
    const credentialForm = el('form', {
      id: 'sign-in-form',
      onsubmit: async (event) => {
        event.preventDefault();
        message.replaceChildren();
        try {
          const form = new URLSearchParams({
            grant_type: 'client_credentials',
            client_id: clientId.value.trim(),
            client_secret: secret.value,
            scope: 'catalog',
          });
          const response = await fetch('/v1/oauth/tokens', { method: 'POST', body: form, credentials: 'omit', cache: 'no-store' });
          const body = await response.json().catch(() => ({}));
          if (!response.ok || !body.access_token) {
            throw new Error(body.error_description || body.error || `sign-in failed (${response.status})`);
          }
          secret.value = '';
          await acceptToken(body.access_token);
        } catch (err) {
          session.token = null;
          message.replaceChildren(notice(err.message, 'error'));
        }
      },
    },
    el('label', {}, 'Client id', clientId),
    el('label', {}, 'Client secret', secret),
    el('button', { type: 'submit', id: 'sign-in' }, 'Sign in'));
    const tokenForm = el('form', {
      id: 'token-form',
      onsubmit: async (event) => {
        event.preventDefault();
        message.replaceChildren();
        try {
          await acceptToken(pasted.value.trim());
        } catch (err) {
          session.token = null;
          message.replaceChildren(notice(`That token was not accepted: ${err.message}`, 'error'));
        }
      },
    },
    el('label', {}, 'Or paste a bearer token', pasted),
    el('button', { type: 'submit', id: 'use-token' }, 'Use token'));
    show(el('section', { class: 'card sign-in' },
      el('h1', {}, 'Sign in to Floe'),
      el('p', { class: 'muted' }, 'This server has authentication on. Sign in with a principal\'s client credential (from floe principal create, or the admin-credential file of a new deployment), or paste a token. The token stays in this tab only.'),
      message, credentialForm, tokenForm));
  }

  // ---- pages

  async function warehousesPage() {
    const found = await warehouses();
    const rows = found.details
      ? found.details.map((w) => [el('a', { href: `#/w/${enc(w.name)}`, class: 'warehouse' }, w.name), w['storage-url'], w.default ? 'default' : '', when(w['created-at-ms'])])
      : found.names.map((name) => [el('a', { href: `#/w/${enc(name)}`, class: 'warehouse' }, name), '', 'default', '']);
    show(el('h1', {}, 'Warehouses'),
      found.note ? notice(found.note) : null,
      section('Warehouses', 'warehouses', table(['Name', 'Storage', '', 'Created'], rows)));
  }

  async function warehousePage(warehouse) {
    const namespaces = await allNamespaces(warehouse);
    const listings = await Promise.all(namespaces.map(async (levels) => {
      const base = `/v1/${enc(warehouse)}/namespaces/${nsPath(levels)}`;
      const [tables, views] = await Promise.all([
        listAll(`${base}/tables`, 'identifiers').catch(() => []),
        listAll(`${base}/views`, 'identifiers').catch(() => []),
      ]);
      return { levels, tables, views };
    }));
    const search = el('input', { id: 'search', type: 'search', placeholder: 'Search namespaces, tables and views', autofocus: true });
    const entries = [];
    const groups = listings.map(({ levels, tables, views }) => {
      const items = [
        ...tables.map((t) => ({ kind: 'table', name: t.name, href: `#/w/${enc(warehouse)}/t/${nsPath(levels)}/${enc(t.name)}` })),
        ...views.map((v) => ({ kind: 'view', name: v.name, href: `#/w/${enc(warehouse)}/v/${nsPath(levels)}/${enc(v.name)}` })),
      ].sort((a, b) => a.name.localeCompare(b.name));
      const list = el('ul', { class: 'entries' }, items.map((item) => {
        const li = el('li', { class: `entry ${item.kind}`, 'data-name': `${nsText(levels)}.${item.name}`.toLowerCase() },
          el('span', { class: `kind ${item.kind}` }, item.kind), ' ',
          el('a', { href: item.href }, item.name));
        entries.push(li);
        return li;
      }));
      const group = el('div', { class: 'namespace', 'data-name': nsText(levels).toLowerCase() },
        el('h3', {}, nsText(levels), el('span', { class: 'muted' }, ` · ${tables.length} tables, ${views.length} views`)),
        items.length ? list : el('p', { class: 'muted' }, 'empty'));
      return group;
    });
    search.addEventListener('input', () => {
      const query = search.value.trim().toLowerCase();
      for (const group of groups) {
        let visible = 0;
        for (const entry of group.querySelectorAll('.entry')) {
          const match = !query || entry.dataset.name.includes(query);
          entry.hidden = !match;
          if (match) visible += 1;
        }
        group.hidden = Boolean(query) && visible === 0 && !group.dataset.name.includes(query);
      }
    });
    show(el('p', { class: 'crumbs' }, el('a', { href: '#/' }, 'Warehouses'), ' / ', warehouse),
      el('h1', {}, `Warehouse ${warehouse}`),
      el('p', {}, el('a', { href: `#/sql?w=${enc(warehouse)}` }, 'Query this warehouse with SQL')),
      search,
      namespaces.length ? groups : notice('No namespaces yet.'));
  }

  function typeText(type) {
    if (typeof type === 'string') return type;
    if (type.type === 'struct') return `struct<${type.fields.map((f) => `${f.name}: ${typeText(f.type)}`).join(', ')}>`;
    if (type.type === 'list') return `list<${typeText(type.element)}>`;
    if (type.type === 'map') return `map<${typeText(type.key)}, ${typeText(type.value)}>`;
    return JSON.stringify(type);
  }

  function schemaTable(schema, id) {
    return table(['Id', 'Name', 'Type', 'Required', 'Doc'],
      schema.fields.map((f) => [String(f.id), f.name, typeText(f.type), f.required ? 'yes' : 'no', f.doc || '']),
      { class: 'schema', id });
  }

  function columnNames(metadata) {
    const names = new Map();
    for (const schema of metadata.schemas || []) {
      for (const field of schema.fields) names.set(field.id, field.name);
    }
    return names;
  }

  function schemaSection(metadata) {
    const current = (metadata.schemas || []).find((s) => s['schema-id'] === metadata['current-schema-id']) || metadata.schemas[0];
    const older = (metadata.schemas || []).filter((s) => s !== current).sort((a, b) => b['schema-id'] - a['schema-id']);
    return section(`Schema (id ${current['schema-id']})`, 'schema',
      schemaTable(current, 'current-schema'),
      el('h3', {}, `Schema history: ${metadata.schemas.length} schema${metadata.schemas.length === 1 ? '' : 's'}`),
      older.length === 0 ? el('p', { class: 'muted' }, 'The table has had one schema.') : null,
      older.map((s) => el('details', { class: 'old-schema' },
        el('summary', {}, `schema ${s['schema-id']}: ${s.fields.map((f) => f.name).join(', ')}`),
        schemaTable(s))));
  }

  function layoutSection(metadata) {
    const names = columnNames(metadata);
    const spec = (metadata['partition-specs'] || []).find((s) => s['spec-id'] === metadata['default-spec-id']);
    const order = (metadata['sort-orders'] || []).find((o) => o['order-id'] === metadata['default-sort-order-id']);
    return section('Partitioning and sort order', 'layout',
      el('h3', {}, `Partition spec ${spec ? spec['spec-id'] : ''}`),
      spec && spec.fields.length
        ? table(['Field', 'Source column', 'Transform'], spec.fields.map((f) => [f.name, names.get(f['source-id']) || `#${f['source-id']}`, f.transform]), { id: 'partition-spec' })
        : el('p', { id: 'partition-spec', class: 'muted' }, 'Unpartitioned'),
      el('h3', {}, `Sort order ${order ? order['order-id'] : ''}`),
      order && order.fields.length
        ? table(['Column', 'Transform', 'Direction', 'Nulls'], order.fields.map((f) => [names.get(f['source-id']) || `#${f['source-id']}`, f.transform, f.direction, f['null-order']]), { id: 'sort-order' })
        : el('p', { id: 'sort-order', class: 'muted' }, 'Unsorted'));
  }

  function propertiesSection(metadata) {
    const entries = Object.entries(metadata.properties || {}).sort(([a], [b]) => a.localeCompare(b));
    return section('Properties', 'properties',
      entries.length ? table(['Property', 'Value'], entries, { id: 'properties-table' }) : el('p', { class: 'muted' }, 'none'));
  }

  function timelineSection(metadata) {
    const snapshots = metadata.snapshots || [];
    const refs = metadata.refs || {};
    const legend = el('p', { class: 'legend' },
      el('span', { class: 'swatch added' }), ' added ',
      el('span', { class: 'swatch removed' }), ' removed · markers: ',
      el('span', { class: 'swatch op-append' }), ' append ',
      el('span', { class: 'swatch op-overwrite' }), ' overwrite ',
      el('span', { class: 'swatch op-delete' }), ' delete ',
      el('span', { class: 'swatch op-replace' }), ' replace (compaction) · ⎇ branch ◆ tag');
    const rows = [...snapshots].sort((a, b) => b['timestamp-ms'] - a['timestamp-ms']).map((s) => {
      const summary = s.summary || {};
      return [String(s['snapshot-id']), when(s['timestamp-ms']), summary.operation || '',
        summary['added-records'] || '0', summary['deleted-records'] || '0',
        summary['added-data-files'] || '0', summary['deleted-data-files'] || '0', summary['total-records'] || ''];
    });
    return section(`Snapshots (${snapshots.length})`, 'timeline', legend, Charts.timeline(snapshots, refs),
      el('details', {}, el('summary', {}, 'Snapshot list'),
        table(['Snapshot', 'Time', 'Operation', '+ records', '− records', '+ files', '− files', 'Total records'], rows, { id: 'snapshot-list' })));
  }

  async function histogramSection(warehouse, levels, name, target) {
    const holder = section('Data file sizes (current snapshot)', 'file-sizes', el('p', { class: 'muted' }, 'Loading…'));
    const quoted = (text) => `"${text.replace(/"/g, '""')}"`;
    const sql = `SELECT CAST(floor(log2(CAST(greatest(file_size_in_bytes, 1) AS DOUBLE))) AS BIGINT) AS size_class, `
      + `count(*) AS files, sum(file_size_in_bytes) AS bytes FROM ${quoted(nsText(levels))}.${quoted(`${name}$files`)} `
      + 'WHERE content = 0 GROUP BY 1 ORDER BY 1';
    api('POST', `/management/v1/warehouses/${enc(warehouse)}/sql`, { sql })
      .then((result) => {
        const buckets = result.rows.map((row) => ({ bucket: Number(row[0]), files: Number(row[1]), bytes: Number(row[2]) }));
        const total = buckets.reduce((sum, b) => sum + b.files, 0);
        holder.replaceChildren(el('h2', {}, 'Data file sizes (current snapshot)'),
          el('p', { class: 'muted' }, `${total} data files; the line marks the compaction target (${Charts.bytes(target)}), from the maintenance settings.`),
          Charts.histogram(buckets, target));
      })
      .catch((err) => holder.replaceChildren(el('h2', {}, 'Data file sizes'), failure(err)));
    return holder;
  }

  function settingsSection(warehouse, levels, name, settings) {
    const path = `/management/v1/warehouses/${enc(warehouse)}/namespaces/${nsPath(levels)}/tables/${enc(name)}/maintenance`;
    const message = el('div', { id: 'settings-message' });
    const body = el('tbody');
    const render = (current) => {
      body.replaceChildren(...Object.entries(current).sort(([a], [b]) => a.localeCompare(b)).map(([key, setting]) => {
        const input = el('input', { value: setting.value, 'data-setting': key, 'aria-label': key });
        const save = el('button', { type: 'button', class: 'save', 'data-setting': key }, 'Save');
        const reset = setting.source === 'table'
          ? el('button', { type: 'button', class: 'reset link', 'data-setting': key, title: 'Remove the table\'s own value' }, 'Reset')
          : null;
        const change = async (request, done) => {
          message.replaceChildren();
          try {
            const updated = await api('POST', path, request);
            render(updated.settings);
            message.replaceChildren(notice(done, 'ok'));
          } catch (err) {
            message.replaceChildren(failure(err));
          }
        };
        save.addEventListener('click', () => change({ updates: { [key]: input.value.trim() } }, `Saved ${key} = ${input.value.trim()}`));
        if (reset) reset.addEventListener('click', () => change({ removals: [key] }, `Removed the table's ${key}`));
        return el('tr', { 'data-setting': key },
          el('td', {}, key.replace('floe.maintenance.', '')),
          el('td', {}, input),
          el('td', { class: `source ${setting.source}` }, String(setting.source)),
          el('td', {}, save, ' ', reset));
      }));
    };
    render(settings);
    return section('Maintenance settings', 'maintenance',
      el('p', { class: 'muted' }, 'Effective values and where each comes from. Changing one needs the maintain privilege on the table; it is stored as a table property.'),
      message,
      el('table', { id: 'settings' }, el('thead', {}, el('tr', {}, ['Setting', 'Value', 'From', ''].map((h) => el('th', {}, h)))), body));
  }

  async function jobsSection(warehouse, levels, name) {
    const query = `warehouse=${enc(warehouse)}&namespace=${nsPath(levels)}&table=${enc(name)}&limit=50`;
    try {
      const { jobs } = await api('GET', `/management/v1/maintenance/jobs?${query}`);
      const rows = jobs.map((job) => [job.kind, job.trigger, when(job['started-at-ms']),
        job['finished-at-ms'] ? `${((job['finished-at-ms'] - job['started-at-ms']) / 1000).toFixed(1)} s` : 'running',
        el('span', { class: `outcome ${job.outcome}` }, job.outcome),
        Object.entries(job.stats || {}).map(([k, v]) => `${k}=${v}`).join(', ') + (job.error ? ` ${job.error}` : '')]);
      return section(`Maintenance jobs (${jobs.length})`, 'jobs',
        jobs.length ? table(['Kind', 'Trigger', 'Started', 'Took', 'Outcome', 'Details'], rows, { id: 'jobs-table' }) : el('p', { class: 'muted' }, 'No jobs have run on this table.'));
    } catch (err) {
      return section('Maintenance jobs', 'jobs', failure(err));
    }
  }

  async function findingsSection(warehouse, levels, name) {
    const query = `warehouse=${enc(warehouse)}&namespace=${nsPath(levels)}&table=${enc(name)}&limit=100`;
    try {
      const { findings } = await api('GET', `/management/v1/scrub/findings?${query}`);
      const rows = findings.map((f) => [f.open ? 'open' : 'resolved', f.kind, f.file, f.detail, when(f['found-at-ms'])]);
      return section(`Scrub findings (${findings.filter((f) => f.open).length} open)`, 'findings',
        findings.length ? table(['State', 'Kind', 'File', 'Detail', 'Found'], rows, { id: 'findings-table' }) : el('p', { class: 'muted' }, 'The scrubber has found nothing wrong with this table.'));
    } catch (err) {
      return section('Scrub findings', 'findings', failure(err));
    }
  }

  async function tablePage(warehouse, levels, name) {
    const path = `/v1/${enc(warehouse)}/namespaces/${nsPath(levels)}/tables/${enc(name)}`;
    const loaded = await api('GET', path);
    const metadata = loaded.metadata;
    let settings = null;
    let settingsError = null;
    try {
      settings = (await api('GET', `/management/v1/warehouses/${enc(warehouse)}/namespaces/${nsPath(levels)}/tables/${enc(name)}/maintenance`)).settings;
    } catch (err) {
      settingsError = err;
    }
    const target = settings && settings[TARGET_SETTING] ? Number(settings[TARGET_SETTING].value) : 0;
    const current = (metadata.snapshots || []).find((s) => s['snapshot-id'] === metadata['current-snapshot-id']);
    const facts = [
      ['Location', metadata.location],
      ['Format version', String(metadata['format-version'])],
      ['Table UUID', metadata['table-uuid']],
      ['Current snapshot', current ? `${current['snapshot-id']} (${when(current['timestamp-ms'])})` : 'none'],
      ['Records', current && current.summary ? current.summary['total-records'] || '' : '0'],
      ['Last updated', when(metadata['last-updated-ms'])],
      ['Metadata file', loaded['metadata-location'] || ''],
    ];
    const [histogram, jobs, findings] = await Promise.all([
      histogramSection(warehouse, levels, name, target),
      jobsSection(warehouse, levels, name),
      findingsSection(warehouse, levels, name),
    ]);
    show(el('p', { class: 'crumbs' }, el('a', { href: '#/' }, 'Warehouses'), ' / ', el('a', { href: `#/w/${enc(warehouse)}` }, warehouse), ' / ', nsText(levels)),
      el('h1', { id: 'table-name' }, `${nsText(levels)}.${name}`),
      el('p', {}, el('a', { href: `#/sql?w=${enc(warehouse)}&q=${enc(`SELECT * FROM "${nsText(levels)}"."${name}" LIMIT 100`)}` }, 'Query in SQL')),
      section('Table', 'facts', table(['', ''], facts, { class: 'facts' })),
      timelineSection(metadata),
      histogram,
      schemaSection(metadata),
      layoutSection(metadata),
      propertiesSection(metadata),
      settings ? settingsSection(warehouse, levels, name, settings) : section('Maintenance settings', 'maintenance', failure(settingsError)),
      jobs,
      findings);
  }

  async function viewPage(warehouse, levels, name) {
    const loaded = await api('GET', `/v1/${enc(warehouse)}/namespaces/${nsPath(levels)}/views/${enc(name)}`);
    const metadata = loaded.metadata;
    const version = (metadata.versions || []).find((v) => v['version-id'] === metadata['current-version-id']) || {};
    const schema = (metadata.schemas || []).find((s) => s['schema-id'] === version['schema-id']);
    show(el('p', { class: 'crumbs' }, el('a', { href: '#/' }, 'Warehouses'), ' / ', el('a', { href: `#/w/${enc(warehouse)}` }, warehouse), ' / ', nsText(levels)),
      el('h1', {}, `View ${nsText(levels)}.${name}`),
      section(`Version ${version['version-id']} of ${(metadata.versions || []).length}`, 'view-version',
        (version.representations || []).map((r) => el('div', {}, el('h3', {}, r.dialect || r.type), el('pre', { class: 'sql' }, r.sql)))),
      schema ? section('Schema', 'schema', schemaTable(schema, 'current-schema')) : null,
      section('Properties', 'properties', table(['Property', 'Value'], Object.entries(metadata.properties || {}))));
  }

  async function sqlPage(params) {
    const found = await warehouses();
    const chosen = params.get('w') || session.defaultWarehouse;
    const select = el('select', { id: 'sql-warehouse' }, found.names.map((n) => el('option', { value: n, selected: n === chosen }, n)));
    const editor = el('textarea', { id: 'sql-text', rows: 8, spellcheck: 'false' });
    editor.value = params.get('q') || '';
    editor.placeholder = 'SELECT * FROM "sales"."orders" LIMIT 10\n-- time travel: ... FROM "sales"."orders" FOR VERSION AS OF 1234567890\n-- metadata: SELECT * FROM "sales"."orders$snapshots"';
    const rowsInput = el('input', { id: 'sql-max-rows', type: 'number', min: 1, max: 10000, value: 1000 });
    const result = el('div', { id: 'sql-result' });
    const run = async () => {
      result.replaceChildren(el('p', { class: 'muted' }, 'Running…'));
      const started = performance.now();
      try {
        const answer = await api('POST', `/management/v1/warehouses/${enc(select.value)}/sql`, { sql: editor.value, 'max-rows': Number(rowsInput.value) || 1000 });
        const took = ((performance.now() - started) / 1000).toFixed(2);
        result.replaceChildren(
          el('p', { class: 'muted', id: 'sql-summary' }, `${answer.rows.length} row${answer.rows.length === 1 ? '' : 's'}${answer.truncated ? ' (more rows were cut off: raise the row limit or narrow the query)' : ''} in ${took} s`),
          el('div', { class: 'scroll' }, el('table', { id: 'sql-rows' },
            el('thead', {}, el('tr', {}, answer.columns.map((c) => el('th', { title: c.type }, c.name)))),
            el('tbody', {}, answer.rows.map((row) => el('tr', {}, row.map((cell) => el('td', { class: cell === null ? 'null' : '' }, cell === null ? 'NULL' : cell))))))));
      } catch (err) {
        result.replaceChildren(failure(err));
      }
    };
    editor.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        run();
      }
    });
    show(el('h1', {}, 'SQL'),
      el('p', { class: 'muted' }, 'Read-only queries through Floe\'s SQL engine (the one behind floe sql). Name tables as "namespace"."table"; time travel with FOR VERSION AS OF <snapshot id or branch/tag> or FOR SYSTEM_TIME AS OF \'<timestamp>\'; metadata tables as "table$snapshots", "table$files", "table$history", "table$refs", "table$manifests". Ctrl+Enter runs.'),
      section('Query', 'sql-query',
        el('div', { class: 'row' }, el('label', {}, 'Warehouse ', select), el('label', {}, 'Row limit ', rowsInput)),
        editor,
        el('div', {}, el('button', { type: 'button', id: 'sql-run', onclick: run }, 'Run'))),
      result);
    if (editor.value) run();
  }

  async function serverPage() {
    const summary = await api('GET', '/management/v1/server');
    const jobs = summary['jobs-last-day'] || {};
    const jobCount = Object.values(jobs).reduce((sum, n) => sum + n, 0);
    const figure = (label, value, id) => el('div', { class: 'figure', id }, el('div', { class: 'value' }, String(value)), el('div', { class: 'label' }, label));
    show(el('h1', {}, 'Server'),
      el('div', { class: 'figures' },
        figure('warehouses', summary.warehouses.length, 'figure-warehouses'),
        figure('maintenance jobs in the last day', jobCount, 'figure-jobs'),
        figure('failed jobs in the last day', jobs.failed || 0, 'figure-failed'),
        figure('open scrub findings', summary['open-scrub-findings'], 'figure-findings')),
      section('This server', 'server-facts', table(['', ''], [
        ['Version', summary.version],
        ['Authentication', summary['auth-mode']],
        ['Metadata store', summary['metadata-store']],
        ['Maintenance scheduler', summary['maintenance-scheduler'] ? 'on' : 'off'],
        ['Last maintenance job', when(summary['last-job-started-at-ms']) || 'none yet'],
        ['Jobs in the last day by outcome', Object.entries(jobs).map(([k, v]) => `${k}: ${v}`).join(', ') || 'none'],
      ], { class: 'facts' })),
      section('Warehouses', 'server-warehouses', table(['Name', 'Storage', ''], summary.warehouses.map((w) => [el('a', { href: `#/w/${enc(w.name)}` }, w.name), w['storage-url'], w.default ? 'default' : '']))),
      section(`Replicas (${summary.replicas.length})`, 'replicas',
        el('p', { class: 'muted' }, `Every server serving from this metadata store writes a heartbeat every 10 s; these are the ones seen in the last ${Math.round(summary['replicas-seen-within-ms'] / 1000)} s.`),
        table(['Address', 'Version', 'Started', 'Last seen', ''], summary.replicas.map((r) => [r.address, r.version, when(r['started-at-ms']), when(r['last-seen-ms']), r['answered-this-request'] ? 'answered this page' : '']), { id: 'replicas-table' })));
  }

  // ---- routing

  function parseHash() {
    const raw = location.hash.replace(/^#/, '') || '/';
    const [pathPart, queryPart] = raw.split('?');
    const parts = pathPart.split('/').filter(Boolean).map(decodeURIComponent);
    return { parts, params: new URLSearchParams(queryPart || '') };
  }

  async function render() {
    renderHeader();
    const { parts, params } = parseHash();
    if (parts[0] === 'sign-in' || !session.ready) {
      signInPage();
      return;
    }
    show(el('p', { class: 'muted' }, 'Loading…'));
    try {
      if (parts.length === 0) await warehousesPage();
      else if (parts[0] === 'sql') await sqlPage(params);
      else if (parts[0] === 'server') await serverPage();
      else if (parts[0] === 'w' && parts.length === 2) await warehousePage(parts[1]);
      else if (parts[0] === 'w' && parts[2] === 't' && parts.length === 5) await tablePage(parts[1], parts[3].split(UNIT_SEPARATOR), parts[4]);
      else if (parts[0] === 'w' && parts[2] === 'v' && parts.length === 5) await viewPage(parts[1], parts[3].split(UNIT_SEPARATOR), parts[4]);
      else show(notice('No such page.', 'error'));
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return;
      show(failure(err));
    }
  }

  async function start() {
    document.getElementById('sign-out').addEventListener('click', () => {
      signedOut();
      render();
    });
    window.addEventListener('hashchange', render);
    try {
      const config = await api('GET', '/v1/config');
      session.defaultWarehouse = config.overrides.prefix;
      session.ready = true;
      if (location.hash === '#/sign-in') location.hash = '#/';
    } catch (err) {
      session.ready = false;
      if (!(err instanceof ApiError && err.status === 401)) {
        show(failure(err));
        return;
      }
    }
    render();
  }

  start();
})();
