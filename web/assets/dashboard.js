/* dashboard.js: the only script of `sluice dashboard` (served as a file:
 * the Content-Security-Policy allows no inline script or handler).
 * Confirms actions and refreshes pages that ask for it. */
'use strict';
document.addEventListener('submit', function (e) {
  var form = e.target;
  var msg = form.getAttribute('data-confirm');
  if (!msg) return;
  if (!window.confirm(msg)) {
    e.preventDefault();
    return;
  }
  var c = form.querySelector('input[name="confirm"]');
  if (c) c.value = '1';
});
(function () {
  var s = parseInt(document.body.getAttribute('data-refresh') || '0', 10);
  if (s > 0 && !/[?&]refresh=0(&|$)/.test(window.location.search)) {
    window.setTimeout(function () { window.location.reload(); }, s * 1000);
  }
})();
