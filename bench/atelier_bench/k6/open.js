// The page-load mix at a constant arrival rate (an open model), for atelier_bench.fleet; and,
// with BENCH_MODE=closed, the same generator's closed-loop maximum.
//
// wrk is a closed loop: a connection sends its next request only when the last one came back,
// so a slow answer also delays the requests that would have followed it and hides the queue
// they would have met. Here k6's constant-arrival-rate executor starts BENCH_RATE requests a
// second whatever the answers do (each iteration is one request), replaying the same request
// files as the wrk runs ($BENCH_DIR/<service>.txt, "page<TAB>METHOD<TAB>path<TAB>body"),
// interleaved by page load. k6 reports the iterations it could not start (dropped_iterations):
// then the generator, not the system, set the pace, and the run says so.
import http from 'k6/http';
import exec from 'k6/execution';
import { SharedArray } from 'k6/data';

const SERVICES = ['products', 'qa', 'reviews'];
const DIR = __ENV.BENCH_DIR;

const requests = new SharedArray('requests', () => {
  const all = [];
  for (const service of SERVICES) {
    const base = `http://${__ENV[`BENCH_${service.toUpperCase()}`]}`;
    for (const line of open(`${DIR}/${service}.txt`).split('\n')) {
      if (!line) continue;
      const [page, method, path, body] = line.split('\t');
      all.push({ page: Number(page), method, url: base + path, body: body || null });
    }
  }
  // Page-load order (a page's requests together), services interleaved as a browser would.
  all.sort((a, b) => a.page - b.page);
  return all;
});

// BENCH_MODE=closed: BENCH_VUS connections each sending its next request when the last one is
// answered (a closed loop like wrk's): the most this generator gets from the system on this
// machine, the reference for the open run's rate.
const SCENARIOS = {
  open: {
    executor: 'constant-arrival-rate',
    rate: Number(__ENV.BENCH_RATE),
    timeUnit: '1s',
    duration: `${__ENV.BENCH_SECONDS}s`,
    // Enough VUs for the requests in flight (rate x latency), not more: each VU costs k6 CPU.
    preAllocatedVUs: Number(__ENV.BENCH_VUS || 40),
    maxVUs: Number(__ENV.BENCH_MAX_VUS || 400),
  },
  closed: {
    executor: 'constant-vus',
    vus: Number(__ENV.BENCH_VUS || 60),
    duration: `${__ENV.BENCH_SECONDS}s`,
  },
};
const MODE = __ENV.BENCH_MODE || 'open';

export const options = {
  discardResponseBodies: true,
  summaryTrendStats: ['avg', 'p(50)', 'p(95)', 'p(99)', 'max'],
  scenarios: { [MODE]: SCENARIOS[MODE] },
};

const HEADERS = { 'Content-Type': 'application/json' };

export default function () {
  const request = requests[exec.scenario.iterationInTest % requests.length];
  http.request(request.method, request.url, request.body, request.body ? { headers: HEADERS } : {});
}

export function handleSummary(data) {
  const metric = (name) => (data.metrics[name] ? data.metrics[name].values : {});
  const duration = metric('http_req_duration');
  return {
    [__ENV.BENCH_SUMMARY]: JSON.stringify({
      rate: Number(__ENV.BENCH_RATE || 0),
      requests: metric('http_reqs').count || 0,
      rps: metric('http_reqs').rate || 0,
      failed_share: metric('http_req_failed').rate || 0,
      dropped_iterations: metric('dropped_iterations').count || 0,
      vus_max: metric('vus_max').max || metric('vus_max').value || 0,
      p50_ms: duration['p(50)'], p95_ms: duration['p(95)'], p99_ms: duration['p(99)'], max_ms: duration.max,
    }),
  };
}
