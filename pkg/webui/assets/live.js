// Keeps the page live with server-sent events from the daemon. The page
// reads the same without it (reload it); nothing here changes anything on
// the node, and nothing is asked of any host but the page's own.
(function () {
  'use strict';
  var live = document.getElementById('live');
  if (!live || !window.EventSource) return;
  var conn = document.getElementById('conn');
  var log = document.getElementById('log');
  var maxLines = 2000;
  var es = new EventSource(live.getAttribute('data-events'));
  function state(text, on) {
    if (!conn) return;
    conn.textContent = text;
    conn.className = on ? 'conn on' : 'conn';
  }
  es.onopen = function () { state('live', true); };
  es.onerror = function () { state(es.readyState === 2 ? 'not live: reload the page' : 'reconnecting', false); };
  es.addEventListener('status', function (e) { live.innerHTML = e.data; });
  es.addEventListener('log-reset', function () { if (log) log.textContent = ''; });
  es.addEventListener('log', function (e) {
    if (!log) return;
    var lines = JSON.parse(e.data);
    var end = log.scrollTop + log.clientHeight >= log.scrollHeight - 8;
    var f = document.createDocumentFragment();
    for (var i = 0; i < lines.length; i++) {
      f.appendChild(document.createTextNode(lines[i] + '\n'));
    }
    log.appendChild(f);
    while (log.childNodes.length > maxLines) log.removeChild(log.firstChild);
    if (end) log.scrollTop = log.scrollHeight;
  });
})();
