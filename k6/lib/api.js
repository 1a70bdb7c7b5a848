// The Atelier API as k6 sees it: base URLs from __ENV, one URL builder per route (routes.js: from
// the OpenAPI descriptions), and every request tagged with its route name (`name`: the
// operationId, shared with the services' metrics and the benchmarks) and checked (status and a
// key of the body), never logged.
import http from 'k6/http';
import { check } from 'k6';
import { fillPath, OPENAPI_ROUTES, PAGE_LOAD } from './routes.js';

export const BASE = {
  products: __ENV.PRODUCTS_BASE_URL || 'http://127.0.0.1:3001',
  qa: __ENV.QA_BASE_URL || 'http://127.0.0.1:3002',
  reviews: __ENV.REVIEWS_BASE_URL || 'http://127.0.0.1:3003',
};

// What a good response's body looks like.
const has = (selector) => (r) => {
  if (r.status >= 300) return false;
  try {
    const value = r.json(selector);
    return value !== undefined && value !== null;
  } catch (notJson) {
    return false; // a failed check, not an aborted iteration
  }
};
const created = (location) => (r) => r.body === 'Created'
  && new RegExp(`^${location}/\\d+$`).test(r.headers.Location || '');
const empty = (r) => !r.body;

// Route name -> what a good response's body looks like. The rest of a route (its service,
// method, path, kind and success status) comes from the OpenAPI descriptions (routes.js); a
// route missing here, or one here the descriptions do not have, stops k6 before it starts.
const BODY_CHECKS = {
  products_list: has('0.id'),
  product: has('features'),
  product_styles: has('results'),
  product_related: has('#'),
  qa_questions: has('results'),
  qa_answers: has('results'),
  qa_question_post: created('/qa/questions'),
  qa_answer_post: created('/qa/answers'),
  qa_question_helpful: empty,
  qa_question_report: empty,
  qa_answer_helpful: empty,
  qa_answer_report: empty,
  reviews_list: has('results'),
  reviews_meta: has('characteristics'),
  reviews_post: created('/reviews'),
  reviews_helpful: empty,
  reviews_report: empty,
};
const unchecked = Object.keys(OPENAPI_ROUTES).filter((name) => !(name in BODY_CHECKS));
const unknown = Object.keys(BODY_CHECKS).filter((name) => !(name in OPENAPI_ROUTES));
if (unchecked.length || unknown.length) {
  throw new Error(`k6/lib/api.js and the OpenAPI descriptions disagree: no check for [${unchecked}], `
    + `no route [${unknown}]`);
}

export const ROUTES = Object.fromEntries(Object.entries(OPENAPI_ROUTES)
  .map(([name, route]) => [name, { ...route, body: BODY_CHECKS[name] }]));

// The kinds of the given routes, the argument of profiles.thresholds().
export function kinds(routes) {
  return Object.fromEntries(routes.map((route) => [route, ROUTES[route].kind]));
}

// Each read's query: the page load's (page-load.json) and the lists' first page. A value
// "{...}" takes the URL builder's next argument after the path's own parameters.
const QUERY = { ...PAGE_LOAD.query, products_list: { page: '{page}', count: 5 }, qa_answers: { count: 100 } };

function target(route, args) {
  const inPath = (ROUTES[route].path.match(/\{[^}]+\}/g) || []).length;
  const rest = args.slice(inPath);
  let next = 0;
  const query = Object.entries(QUERY[route] || {})
    .map(([key, value]) => `${key}=${String(value).replace(/^\{[^}]+\}$/, () => String(rest[next++]))}`);
  const path = fillPath(route, args.slice(0, inPath));
  return query.length ? `${path}?${query.join('&')}` : path;
}

// Route name -> (its parameters...) -> the full URL, at the route's service.
export const url = Object.fromEntries(Object.keys(ROUTES)
  .map((name) => [name, (...args) => BASE[ROUTES[name].service] + target(name, args)]));

const JSON_HEADERS = { 'Content-Type': 'application/json' };

function params(route, headers) {
  return { tags: { name: route }, headers };
}

export function verify(route, response) {
  const spec = ROUTES[route];
  check(response, {
    [`${route}: status ${spec.status}`]: (r) => r.status === spec.status,
    [`${route}: body`]: spec.body,
  }, { name: route });
  return response;
}

// GET one route.
export function get(route, ...args) {
  return verify(route, http.get(url[route](...args), params(route)));
}

// GET several routes in parallel, as a browser does: [[route, ...args], ...].
export function getAll(requests) {
  const responses = http.batch(requests.map(([route, ...args]) => (
    { method: 'GET', url: url[route](...args), params: params(route) })));
  return responses.map((response, i) => verify(requests[i][0], response));
}

// PUT helpful/report: an empty form-encoded body, as the front-ends send it.
export function put(route, id) {
  return verify(route, http.put(url[route](id), '', params(route,
    { 'Content-Type': 'application/x-www-form-urlencoded' })));
}

export function post(route, body, ...args) {
  return verify(route, http.post(url[route](...args), JSON.stringify(body),
    params(route, JSON_HEADERS)));
}

// What a shopper types, valid for the contract's limits.
const WORDS = ['comfortable', 'fits', 'true', 'to', 'size', 'great', 'colour', 'fabric',
  'washes', 'well', 'runs', 'small', 'would', 'buy', 'again', 'soft', 'warm', 'light'];

function sentence(words) {
  const picked = [];
  for (let i = 0; i < words; i += 1) picked.push(WORDS[Math.floor(Math.random() * WORDS.length)]);
  return `${picked.join(' ')}.`;
}

function shopper() {
  const name = `k6shopper${Math.floor(Math.random() * 1e6)}`;
  return { name, email: `${name}@example.com` };
}

export const bodies = {
  question: (productId) => ({ body: `Does it ${sentence(6)}`, ...shopper(), product_id: productId }),
  answer: () => ({ body: `Yes, ${sentence(8)}`, ...shopper(),
    photos: ['https://images.example.com/k6/answer.jpg'] }),
  // characteristics: the product's characteristic ids (from its /reviews/meta).
  review: (productId, characteristicIds) => ({
    product_id: productId,
    rating: 1 + Math.floor(Math.random() * 5),
    summary: sentence(4).slice(0, 60),
    body: `${sentence(10)} ${sentence(10)}`.padEnd(60, '.'),
    recommend: Math.random() < 0.8,
    ...shopper(),
    photos: [],
    characteristics: Object.fromEntries(characteristicIds.map((id) => [String(id),
      1 + Math.floor(Math.random() * 5)])),
  }),
};

// Weighted choice: [[weight, value], ...] -> a value.
export function weighted(choices) {
  const total = choices.reduce((sum, [weight]) => sum + weight, 0);
  let draw = Math.random() * total;
  for (const [weight, value] of choices) {
    draw -= weight;
    if (draw < 0) return value;
  }
  return choices[choices.length - 1][1];
}
