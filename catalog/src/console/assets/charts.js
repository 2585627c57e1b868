// The console's two charts, drawn as SVG with the DOM (no library, no inline styles: the page's
// Content-Security-Policy allows only this origin's style sheet, so every look is a CSS class).
'use strict';

window.FloeCharts = (function () {
  const SVG = 'http://www.w3.org/2000/svg';

  function svg(tag, attributes, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      node.setAttribute(name, String(value));
    }
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function titled(node, text) {
    node.appendChild(svg('title', {}, text));
    return node;
  }

  function number(value) {
    const parsed = Number(value);
    return Number.isFinite(parsed) ? parsed : 0;
  }

  function bytes(value) {
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let amount = value;
    let unit = 0;
    while (amount >= 1024 && unit < units.length - 1) {
      amount /= 1024;
      unit += 1;
    }
    const shown = amount >= 10 || unit === 0 ? Math.round(amount) : amount.toFixed(1);
    return `${shown} ${units[unit]}`;
  }

  function time(ms) {
    return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
  }

  // Horizontal positions in time order, at least `gap` apart (snapshots written in the same
  // second would otherwise sit on one another), scaled back into [left, right].
  function positions(times, left, right, gap) {
    if (times.length === 0) return [];
    const first = times[0];
    const span = Math.max(times[times.length - 1] - first, 1);
    const raw = times.map((t) => left + ((t - first) / span) * (right - left));
    if (times.length === 1) return [(left + right) / 2];
    for (let i = 1; i < raw.length; i += 1) raw[i] = Math.max(raw[i], raw[i - 1] + gap);
    const end = raw[raw.length - 1];
    if (end <= right) return raw;
    return raw.map((x) => left + ((x - left) / (end - left)) * (right - left));
  }

  // The snapshot timeline: one marker per snapshot on a time axis; above it, records (top band)
  // and data files (bottom band) added (up) and removed (down); below it, branches and tags.
  function timeline(snapshots, refs) {
    const ordered = [...snapshots].sort((a, b) => a['timestamp-ms'] - b['timestamp-ms']);
    const width = 960;
    const left = 70;
    const right = width - 30;
    const band = 70;
    const recordsY = 20 + band;
    const filesY = recordsY + 2 * band + 20;
    const axisY = filesY + band + 10;
    const refsByTarget = new Map();
    for (const [name, ref] of Object.entries(refs || {})) {
      const list = refsByTarget.get(ref['snapshot-id']) || [];
      list.push({ name, type: ref.type || 'branch' });
      refsByTarget.set(ref['snapshot-id'], list);
    }
    let refRows = 1;
    for (const list of refsByTarget.values()) refRows = Math.max(refRows, list.length);
    const height = axisY + 40 + refRows * 18;
    const root = svg('svg', {
      class: 'chart timeline',
      viewBox: `0 0 ${width} ${height}`,
      role: 'img',
      'aria-label': `Snapshot timeline: ${ordered.length} snapshots`,
    });
    if (ordered.length === 0) {
      root.appendChild(svg('text', { x: width / 2, y: 40, class: 'empty', 'text-anchor': 'middle' }, 'No snapshots yet'));
      return root;
    }
    const xs = positions(ordered.map((s) => s['timestamp-ms']), left, right, 26);
    const summary = (s, key) => number((s.summary || {})[key]);
    const maxRecords = Math.max(1, ...ordered.flatMap((s) => [summary(s, 'added-records'), summary(s, 'deleted-records')]));
    const maxFiles = Math.max(1, ...ordered.flatMap((s) => [summary(s, 'added-data-files'), summary(s, 'deleted-data-files')]));
    const barWidth = Math.max(4, Math.min(14, (right - left) / ordered.length / 3));

    for (const [label, y] of [['records', recordsY], ['data files', filesY]]) {
      root.appendChild(svg('line', { x1: left, x2: right, y1: y, y2: y, class: 'baseline' }));
      root.appendChild(svg('text', { x: left - 8, y: y - band + 12, class: 'band-label', 'text-anchor': 'end' }, `${label} +`));
      root.appendChild(svg('text', { x: left - 8, y: y + band - 4, class: 'band-label', 'text-anchor': 'end' }, '−'));
    }
    root.appendChild(svg('line', { x1: left, x2: right, y1: axisY, y2: axisY, class: 'axis' }));

    const bar = (x, base, amount, max, up, kind, text) => {
      if (amount <= 0) return;
      const length = Math.max(2, (amount / max) * (band - 6));
      const rect = svg('rect', {
        x: x - barWidth / 2,
        y: up ? base - length : base,
        width: barWidth,
        height: length,
        class: `bar ${kind}`,
      });
      root.appendChild(titled(rect, text));
    };

    let lastLabel = -Infinity;
    ordered.forEach((snapshot, i) => {
      const x = xs[i];
      const id = snapshot['snapshot-id'];
      const operation = (snapshot.summary || {}).operation || 'unknown';
      root.appendChild(svg('line', { x1: x, x2: x, y1: recordsY - band, y2: axisY, class: 'stem' }));
      bar(x, recordsY, summary(snapshot, 'added-records'), maxRecords, true, 'added', `${summary(snapshot, 'added-records')} records added`);
      bar(x, recordsY, summary(snapshot, 'deleted-records'), maxRecords, false, 'removed', `${summary(snapshot, 'deleted-records')} records removed`);
      bar(x, filesY, summary(snapshot, 'added-data-files'), maxFiles, true, 'added', `${summary(snapshot, 'added-data-files')} data files added`);
      bar(x, filesY, summary(snapshot, 'deleted-data-files'), maxFiles, false, 'removed', `${summary(snapshot, 'deleted-data-files')} data files removed`);
      const marker = svg('circle', {
        cx: x,
        cy: axisY,
        r: 6,
        class: `snapshot op-${operation}`,
        'data-snapshot-id': id,
      });
      const lines = [`snapshot ${id}`, `${operation} at ${time(snapshot['timestamp-ms'])}`];
      for (const [key, value] of Object.entries(snapshot.summary || {})) {
        if (key !== 'operation') lines.push(`${key}: ${value}`);
      }
      root.appendChild(titled(marker, lines.join('\n')));
      // A time label where it does not run into the previous one.
      if (x - lastLabel >= 130) {
        const anchor = x < left + 60 ? 'start' : x > right - 60 ? 'end' : 'middle';
        root.appendChild(svg('text', { x, y: axisY + 20, class: 'tick', 'text-anchor': anchor }, time(snapshot['timestamp-ms']).slice(5, 19)));
        lastLabel = x;
      }
      (refsByTarget.get(id) || []).forEach((ref, row) => {
        const y = axisY + 38 + row * 18;
        const flag = svg('text', { x, y, class: `ref ${ref.type}`, 'text-anchor': 'middle', 'data-ref': ref.name }, `${ref.type === 'tag' ? '◆' : '⎇'} ${ref.name}`);
        root.appendChild(titled(flag, `${ref.type} ${ref.name} → snapshot ${id}`));
      });
    });
    return root;
  }

  // The file-size histogram: bars of data files by size class (powers of two), and the
  // compaction target marked where its size falls.
  function histogram(buckets, target) {
    const width = 960;
    const height = 260;
    const left = 60;
    const right = width - 20;
    const top = 30;
    const bottom = height - 50;
    const root = svg('svg', {
      class: 'chart histogram',
      viewBox: `0 0 ${width} ${height}`,
      role: 'img',
      'aria-label': 'Data file sizes',
    });
    if (buckets.length === 0) {
      root.appendChild(svg('text', { x: width / 2, y: height / 2, class: 'empty', 'text-anchor': 'middle' }, 'No data files in the current snapshot'));
      return root;
    }
    const targetClass = target > 0 ? Math.floor(Math.log2(target)) : null;
    const classes = buckets.map((b) => b.bucket);
    let low = Math.min(...classes);
    let high = Math.max(...classes);
    if (targetClass !== null) {
      low = Math.min(low, targetClass);
      high = Math.max(high, targetClass);
    }
    const count = high - low + 1;
    const slot = (right - left) / count;
    const maxFiles = Math.max(...buckets.map((b) => b.files));
    const byClass = new Map(buckets.map((b) => [b.bucket, b]));
    root.appendChild(svg('line', { x1: left, x2: right, y1: bottom, y2: bottom, class: 'axis' }));
    root.appendChild(svg('text', { x: left - 8, y: top + 4, class: 'band-label', 'text-anchor': 'end' }, String(maxFiles)));
    root.appendChild(svg('text', { x: left - 8, y: bottom, class: 'band-label', 'text-anchor': 'end' }, '0'));
    const labelEvery = Math.max(1, Math.ceil(count / 12));
    for (let c = low; c <= high; c += 1) {
      const x = left + (c - low) * slot;
      const entry = byClass.get(c);
      if (entry) {
        const h = Math.max(2, (entry.files / maxFiles) * (bottom - top));
        const rect = svg('rect', {
          x: x + slot * 0.1,
          y: bottom - h,
          width: slot * 0.8,
          height: h,
          class: 'bar files',
          'data-files': entry.files,
        });
        root.appendChild(titled(rect, `${entry.files} files of ${bytes(2 ** c)}–${bytes(2 ** (c + 1))} (${bytes(entry.bytes)} in all)`));
        root.appendChild(svg('text', { x: x + slot / 2, y: bottom - h - 4, class: 'count', 'text-anchor': 'middle' }, String(entry.files)));
      }
      if ((c - low) % labelEvery === 0) {
        root.appendChild(svg('text', { x: x + slot / 2, y: bottom + 16, class: 'tick', 'text-anchor': 'middle' }, bytes(2 ** c)));
      }
    }
    root.appendChild(svg('text', { x: (left + right) / 2, y: height - 10, class: 'band-label', 'text-anchor': 'middle' }, 'file size (each bar: from its label to twice that)'));
    if (targetClass !== null) {
      const x = left + (Math.log2(target) - low) * slot;
      root.appendChild(svg('line', { x1: x, x2: x, y1: top - 10, y2: bottom, class: 'target' }));
      const anchor = x > right - 220 ? 'end' : 'start';
      root.appendChild(svg('text', { x: anchor === 'end' ? x - 4 : x + 4, y: top - 14, class: 'target-label', 'text-anchor': anchor }, `compaction target ${bytes(target)}`));
    }
    return root;
  }

  return { timeline, histogram, bytes, time };
})();
