#!/usr/bin/python3
"""dashboard.py: drive `sluice dashboard` in headless Chromium (Debian's
chromium + chromium-driver + python3-selenium). Run by
tests/integration/dashboard.sh, which starts the dashboard and prepares
the journal. Prints "PASS: name" / "FAIL: name" lines; every wait is
bounded. Usage: dashboard.py URL JOURNAL SCREENSHOT_DIR PROFILE_DIR"""
import os
import sqlite3
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

URL, JOURNAL, SHOTS, PROFILE = sys.argv[1:5]
URL = URL.rstrip('/')
FAILS = 0
XSS_QUEUE = os.environ['XSS_QUEUE']
SECRET = os.environ.get('SECRET_KEY', 'sk-never-shown')


def check(name, cond, detail=''):
    global FAILS
    if cond:
        print('PASS: ' + name, flush=True)
    else:
        FAILS += 1
        print('FAIL: ' + name + (': ' + str(detail) if detail else ''),
              flush=True)


def db(sql, *args):
    con = sqlite3.connect('file:' + JOURNAL + '?mode=ro', uri=True,
                          timeout=10)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def shot(d, name):
    os.makedirs(SHOTS, exist_ok=True)
    d.save_screenshot(os.path.join(SHOTS, name + '.png'))


def wait(d, cond, secs=10):
    return WebDriverWait(d, secs).until(cond)


def queue_row(d, name):
    for row in d.find_elements(By.CSS_SELECTOR, '#queues tr.queue'):
        if row.find_element(By.CSS_SELECTOR, 'a.qname').text == name:
            return row
    return None


def click_and_answer(d, button, accept):
    button.click()
    wait(d, EC.alert_is_present())
    alert = d.switch_to.alert
    if accept:
        alert.accept()
    else:
        alert.dismiss()


def main(d):
    pages = [('overview', '/'), ('failures', '/failures'),
             ('failures-1h', '/failures?window=1h'), ('batches', '/batches'),
             ('limits', '/limits'), ('jobs', '/jobs'),
             ('audit', '/audit')]
    failed_id = db("SELECT min(id) FROM jobs WHERE state='failed'")[0][0]
    pages.append(('job', '/job?id=%d' % failed_id))
    for name, path in pages:
        d.get(URL + path)
        h1 = d.find_elements(By.TAG_NAME, 'h1')
        check('page %s loads with its heading' % path,
              h1 and d.title.endswith(' - sluice') and
              not d.find_elements(By.ID, 'error'), d.title)
        check('page %s never shows the API key' % path,
              SECRET not in d.page_source)
        csp = [e['message'] for e in d.get_log('browser')
               if 'Content Security Policy' in e['message']
               or 'Content-Security-Policy' in e['message']]
        check('page %s breaks no CSP rule (no inline script, style or '
              'handler)' % path, not csp, csp[:1])
        shot(d, name)

    # Throughput and the failures chart, from the journal's attempts.
    d.get(URL + '/?refresh=0')
    cells = [c.text for c in
             queue_row(d, 'default').find_elements(By.TAG_NAME, 'td')]
    check('overview: 1 job done in 5 min and in 1 h (default queue)',
          cells[7:9] == ['1', '1'], cells)
    d.get(URL + '/failures')
    bars = d.find_elements(By.CSS_SELECTOR, 'svg.chart a')
    check('failures: one linked bar per class and hour', len(bars) == 2,
          len(bars))
    hrefs = [b.get_dom_attribute('href') or '' for b in bars]
    hrefs = [h for h in hrefs if 'class=server_error' in h] or ['/nowhere']
    d.get(URL + hrefs[0])
    ids = sorted(int(a.text) for a in
                 d.find_elements(By.CSS_SELECTOR, '#results a.job-link'))
    want = [r[0] for r in db("SELECT id FROM jobs WHERE last_class="
                             "'server_error' ORDER BY id")]
    check('a bar links to the jobs behind it', ids == want, ids)

    # Hostile queue name: rendered as text, never run.
    d.get(URL + '/?refresh=0')
    check('the <img onerror> queue name renders as text',
          queue_row(d, XSS_QUEUE) is not None)
    check('no <img> element was created from a journal string',
          len(d.find_elements(By.TAG_NAME, 'img')) == 0)
    ran = d.execute_script('return window.pwned === 1 || window.pwned2 === 1')
    check('no handler or script from the journal ran', not ran)
    check('the title was not changed by an injected handler',
          d.title == 'Overview - sluice', d.title)
    d.get(URL + '/jobs?queue=' + __import__('urllib.parse').parse.quote(
        XSS_QUEUE))
    xss_job = d.find_elements(By.CSS_SELECTOR, 'a.job-link')
    check('search by the hostile queue finds its job', len(xss_job) == 1)
    if xss_job:
        xss_job[0].click()
        wait(d, EC.presence_of_element_located((By.ID, 'body')))
        body = d.find_element(By.ID, 'body').text
        check('a body holding <script> is shown as text',
              '<script>' in body, body)
        ran = d.execute_script('return window.pwned2 === 1')
        check('the body\'s script did not run', not ran)

    # Search a job and open its detail.
    d.get(URL + '/jobs')
    Select(d.find_element(By.ID, 'f-state')).select_by_visible_text('failed')
    d.find_element(By.ID, 'f-queue').send_keys('default')
    d.find_element(By.ID, 'search-go').click()
    wait(d, EC.url_contains('state=failed'))
    links = d.find_elements(By.CSS_SELECTOR, '#results a.job-link')
    want = db("SELECT count(*) FROM jobs WHERE state='failed' "
              "AND queue='default'")[0][0]
    check('search by state and queue lists the failed jobs',
          len(links) == want and want > 0, '%d vs %d' % (len(links), want))
    shot(d, 'search')
    if links:
        links[-1].click()
        wait(d, EC.presence_of_element_located((By.ID, 'attempts')))
        check('job detail shows the state',
              d.find_element(By.ID, 'state').text == 'failed')
        bars = d.find_elements(By.CSS_SELECTOR, '#attempts svg.timing rect')
        check('job detail draws per-hop timing bars', len(bars) >= 4,
              len(bars))
        check('job detail shows the attempt\'s request id',
              'req_dash_1' in d.page_source)
        shot(d, 'job-detail')
    d.get(URL + '/jobs?key=key-succeeded')
    links = d.find_elements(By.CSS_SELECTOR, '#results a.job-link')
    check('search by idempotency key finds one job', len(links) == 1)
    if links:
        links[0].click()
        wait(d, EC.presence_of_element_located((By.ID, 'output')))
        check('job detail shows the output text',
              'Hello from the mock' in d.find_element(By.ID, 'output').text)

    # Search by metadata (sl_jobs_find): its markup shows as text.
    d.get(URL + '/jobs')
    d.find_element(By.ID, 'f-metadata').send_keys('tenant=acme')
    d.find_element(By.ID, 'search-go').click()
    wait(d, EC.url_contains('metadata=tenant'))
    rows = d.find_elements(By.CSS_SELECTOR, '#results tr.job')
    check('search by metadata finds the one job', len(rows) == 1, len(rows))
    check('its metadata shows as text',
          rows and '<svg onload=' in rows[0].text)
    check('no element was created from metadata',
          not d.find_elements(By.CSS_SELECTOR, '#results svg'))
    check('no handler from metadata ran',
          not d.execute_script('return window.pwned === 1'))
    shot(d, 'search-metadata')

    # Pause: a dismissed confirmation changes nothing.
    d.get(URL + '/?refresh=0')
    row = queue_row(d, 'default')
    click_and_answer(d, row.find_element(By.CSS_SELECTOR, 'button.act-pause'),
                     False)
    time.sleep(0.5)
    check('a dismissed confirmation pauses nothing',
          db("SELECT count(*) FROM queues WHERE name='default' "
             "AND paused=1")[0][0] == 0)
    # Pause, then resume, through clicks.
    row = queue_row(d, 'default')
    click_and_answer(d, row.find_element(By.CSS_SELECTOR, 'button.act-pause'),
                     True)
    wait(d, lambda d: queue_row(d, 'default') is not None and
         'paused' in queue_row(d, 'default').text)
    check('the overview shows the queue paused',
          'paused' in queue_row(d, 'default').text)
    check('the journal has the queue paused',
          db("SELECT paused FROM queues WHERE name='default'") == [(1,)])
    shot(d, 'paused')
    row = queue_row(d, 'default')
    click_and_answer(d, row.find_element(By.CSS_SELECTOR,
                                         'button.act-resume'), True)
    wait(d, lambda d: queue_row(d, 'default') is not None and
         queue_row(d, 'default').find_elements(By.CSS_SELECTOR,
                                               'button.act-pause'))
    check('the journal has the queue resumed',
          db("SELECT paused FROM queues WHERE name='default'") == [(0,)])

    # Replay by filter: the dry-run count, then the confirmation.
    before = db("SELECT count(*) FROM jobs WHERE state='failed' "
                "AND last_class='server_error'")[0][0]
    d.get(URL + '/failures')
    form = d.find_element(By.ID, 'replay-form')
    form.find_element(By.NAME, 'class').send_keys('server_error')
    d.find_element(By.ID, 'replay-count').click()
    wait(d, EC.presence_of_element_located((By.ID, 'question')))
    q = d.find_element(By.ID, 'question').text
    check('replay shows the dry-run count first',
          q.startswith('%d job' % before), q)
    check('the dry run changed nothing',
          db("SELECT count(*) FROM jobs WHERE state='failed' "
             "AND last_class='server_error'")[0][0] == before)
    shot(d, 'replay-confirm')
    d.find_element(By.ID, 'confirm').click()
    wait(d, EC.url_contains('/audit'))
    check('after confirmation the jobs are pending again',
          db("SELECT count(*) FROM jobs WHERE state='pending' "
             "AND generation=1")[0][0] == before)
    d.get(URL + '/?refresh=0')
    cells = [c.text for c in
             queue_row(d, 'default').find_elements(By.TAG_NAME, 'td')]
    want = db("SELECT sum(state='pending'), sum(state='failed') FROM jobs "
              "WHERE queue='default'")[0]
    check('right after the replay the overview counts are fresh',
          [cells[1], cells[5]] == [str(want[0]), str(want[1])],
          (cells, want))
    check('the overview says how old its counts are',
          d.find_element(By.ID, 'counts-at').text.startswith('Counts as of'))
    d.get(URL + '/audit')
    check('the audit page lists the replay',
          len(d.find_elements(By.CSS_SELECTOR, '#replays tr.replay')) >= 1)

    # Cancel one job from its page.
    pid = db("SELECT min(id) FROM jobs WHERE state='pending' "
             "AND queue='default'")[0][0]
    d.get(URL + '/job?id=%d' % pid)
    click_and_answer(d, d.find_element(By.CSS_SELECTOR, 'button.act-cancel'),
                     True)
    wait(d, lambda d: d.find_element(By.ID, 'state').text == 'cancelled')
    check('cancel through a click', db("SELECT state FROM jobs WHERE id=?",
                                       pid) == [('cancelled',)])
    # Replay that one job.
    gen = db("SELECT generation FROM jobs WHERE id=?", pid)[0][0]
    d.find_element(By.CSS_SELECTOR, 'button.act-replay-job').click()
    wait(d, EC.alert_is_present())
    d.switch_to.alert.accept()
    wait(d, lambda d: d.find_element(By.ID, 'state').text == 'pending')
    check('replay one job through a click',
          db("SELECT state, generation FROM jobs WHERE id=?", pid)
          == [('pending', gen + 1)])
    d.get(URL + '/audit')
    shot(d, 'audit-after')
    d.get(URL + '/?refresh=0')
    shot(d, 'overview-after')


def run():
    opts = webdriver.ChromeOptions()
    opts.binary_location = '/usr/lib/chromium/chromium'
    for a in ('--headless', '--no-sandbox', '--disable-gpu',
              '--disable-dev-shm-usage', '--window-size=1280,900',
              '--no-first-run', '--disable-extensions',
              '--user-data-dir=' + PROFILE):
        opts.add_argument(a)
    opts.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
    service = Service(executable_path='/usr/bin/chromedriver')
    d = webdriver.Chrome(service=service, options=opts)
    try:
        d.set_page_load_timeout(20)
        d.set_script_timeout(10)
        main(d)
    except Exception as e:  # any error is a failed check, never a hang
        check('the browser session ran to the end', False,
              type(e).__name__ + ': ' + str(e).splitlines()[0])
    finally:
        d.quit()


run()
sys.exit(1 if FAILS else 0)
