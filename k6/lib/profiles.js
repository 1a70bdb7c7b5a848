// Load profiles shared by every script, chosen with PROFILE=smoke|load|stress|spike|soak.
//
// Every profile is an open model (arrival-rate executors): k6 starts iterations at the
// scheduled rate whatever the latency, so a slow system shows up as latency and dropped
// iterations instead of quietly lowering the offered load (a closed model hides it).
// A script states its goal rate in iterations per second; a profile shapes the run around it.
// RATE overrides the goal, DURATION the steady phase (smoke, load, soak).

const SECONDS = { s: 1, m: 60, h: 3600 };

function seconds(text) {
  const match = /^(\d+)([smh])$/.exec(text);
  if (!match) throw new Error(`DURATION must look like 30s, 5m or 1h, not ${text}`);
  return Number(match[1]) * SECONDS[match[2]];
}

// Stages as [rate multiplier of the goal, duration]; the first rate is the starting rate.
const PROFILES = {
  smoke: { steady: '15s', stages: (hold) => [[0.05, hold]] },
  load: { steady: '2m', stages: (hold) => [[0, '0s'], [1, '30s'], [1, hold], [0, '15s']] },
  stress: {
    steady: '1m',
    stages: (hold) => [[0, '0s'], [1, '30s'], [1, hold], [2, '30s'], [2, hold], [3, '30s'],
      [3, hold], [0, '30s']],
  },
  spike: {
    steady: '30s',
    stages: (hold) => [[0.2, '0s'], [0.2, hold], [5, '10s'], [5, hold], [0.2, '10s'],
      [0.2, hold]],
  },
  soak: { steady: '1h', stages: (hold) => [[0, '0s'], [0.8, '1m'], [0.8, hold], [0, '1m']] },
};

export const PROFILE = __ENV.PROFILE || 'smoke';

if (!PROFILES[PROFILE]) {
  throw new Error(`PROFILE must be one of ${Object.keys(PROFILES).join(', ')}, not ${PROFILE}`);
}

// The scenario of the chosen profile for a goal of `goal` iterations/s (RATE overrides it).
// `iterationSeconds` is a generous estimate of one iteration's duration, used only to size
// the VU pool (k6 needs rate x duration VUs to keep the arrival rate).
export function scenario(goal, iterationSeconds = 0.5) {
  const rate = Number(__ENV.RATE || goal);
  const profile = PROFILES[PROFILE];
  const hold = __ENV.DURATION || profile.steady;
  seconds(hold);
  const stages = profile.stages(hold).map(([multiplier, duration]) => ({
    target: Math.max(1, Math.round(rate * multiplier)), duration,
  }));
  const peak = Math.max(...stages.map((s) => s.target));
  const vus = {
    preAllocatedVUs: Math.ceil(peak * iterationSeconds) + 2,
    maxVUs: Math.ceil(peak * iterationSeconds * 10) + 10,
  };
  if (stages.length === 1) {
    return { executor: 'constant-arrival-rate', rate: stages[0].target, timeUnit: '1s',
      duration: stages[0].duration, ...vus };
  }
  return { executor: 'ramping-arrival-rate', startRate: stages[0].target, timeUnit: '1s',
    stages: stages.slice(1), ...vus };
}

// Service-level objectives, per route name: reads are what a page waits for; writes take a
// transaction and may rebuild a product's aggregates, so they get more room. The smoke
// profile checks that everything works (no error, every check passes) on whatever machine
// runs it, a CI runner or a busy laptop: its latency bounds only catch the grossly broken.
// The other profiles hold the system to the objectives. READ_P95_MS etc. override them.
const LATENCY_MS = PROFILE === 'smoke'
  ? { read: [500, 1000], write: [1000, 2000] }
  : { read: [100, 250], write: [250, 500] };
export const SLO = {
  read: { p95: Number(__ENV.READ_P95_MS || LATENCY_MS.read[0]),
    p99: Number(__ENV.READ_P99_MS || LATENCY_MS.read[1]) },
  write: { p95: Number(__ENV.WRITE_P95_MS || LATENCY_MS.write[0]),
    p99: Number(__ENV.WRITE_P99_MS || LATENCY_MS.write[1]) },
  errorRate: Number(__ENV.MAX_ERROR_RATE || 0.01),
};

// Thresholds on the error rate and p95/p99 of every route (tagged `name`), and on the checks.
export function thresholds(routes) {
  const result = {
    http_req_failed: [`rate<${SLO.errorRate}`],
    checks: [`rate>${1 - SLO.errorRate}`],
  };
  for (const [route, kind] of Object.entries(routes)) {
    const slo = SLO[kind];
    result[`http_req_duration{name:${route}}`] = [`p(95)<${slo.p95}`, `p(99)<${slo.p99}`];
    result[`http_req_failed{name:${route}}`] = [`rate<${SLO.errorRate}`];
  }
  return result;
}

// The options every script exports: one scenario, the thresholds, and only the tags that
// make a bounded number of series (the raw URL would make one InfluxDB series per id).
export function options(goal, routes, iterationSeconds) {
  return {
    scenarios: { [PROFILE]: scenario(goal, iterationSeconds) },
    thresholds: thresholds(routes),
    systemTags: ['status', 'method', 'name', 'check', 'error_code', 'expected_response',
      'scenario'],
    summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max', 'count'],
    tags: { profile: PROFILE, run: __ENV.RUN_ID || 'adhoc' },
  };
}
