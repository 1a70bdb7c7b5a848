// The Atelier API as k6 sees it: base URLs from __ENV, one URL builder per route, and every
// request tagged with its route name (`name`, the names shared with the services' metrics and
// the benchmarks) and checked (status and a key of the body), never logged.
import http from 'k6/http';
import { check } from 'k6';

export const BASE = {
  products: __ENV.PRODUCTS_BASE_URL || 'http://127.0.0.1:3001',
  qa: __ENV.QA_BASE_URL || 'http://127.0.0.1:3002',
  reviews: __ENV.REVIEWS_BASE_URL || 'http://127.0.0.1:3003',
};

// Route name -> what a good response looks like; `kind` picks the SLO (profiles.js).
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

export const ROUTES = {
  products_list: { kind: 'read', status: 200, body: has('0.id') },
  product: { kind: 'read', status: 200, body: has('features') },
  product_styles: { kind: 'read', status: 200, body: has('results') },
  product_related: { kind: 'read', status: 200, body: has('#') },
  qa_questions: { kind: 'read', status: 200, body: has('results') },
  qa_answers: { kind: 'read', status: 200, body: has('results') },
  qa_question_post: { kind: 'write', status: 201, body: created('/qa/questions') },
  qa_answer_post: { kind: 'write', status: 201, body: created('/qa/answers') },
  qa_question_helpful: { kind: 'write', status: 204, body: empty },
  qa_question_report: { kind: 'write', status: 204, body: empty },
  qa_answer_helpful: { kind: 'write', status: 204, body: empty },
  qa_answer_report: { kind: 'write', status: 204, body: empty },
  reviews_list: { kind: 'read', status: 200, body: has('results') },
  reviews_meta: { kind: 'read', status: 200, body: has('characteristics') },
  reviews_post: { kind: 'write', status: 201, body: created('/reviews') },
  reviews_helpful: { kind: 'write', status: 204, body: empty },
  reviews_report: { kind: 'write', status: 204, body: empty },
};

// The kinds of the given routes, the argument of profiles.thresholds().
export function kinds(routes) {
  return Object.fromEntries(routes.map((route) => [route, ROUTES[route].kind]));
}

export const url = {
  products_list: (page) => `${BASE.products}/products?page=${page}&count=5`,
  product: (id) => `${BASE.products}/products/${id}`,
  product_styles: (id) => `${BASE.products}/products/${id}/styles`,
  product_related: (id) => `${BASE.products}/products/${id}/related`,
  qa_questions: (productId) => `${BASE.qa}/qa/questions?product_id=${productId}&count=100`,
  qa_answers: (questionId) => `${BASE.qa}/qa/questions/${questionId}/answers?count=100`,
  qa_question_post: () => `${BASE.qa}/qa/questions`,
  qa_answer_post: (questionId) => `${BASE.qa}/qa/questions/${questionId}/answers`,
  qa_question_helpful: (id) => `${BASE.qa}/qa/questions/${id}/helpful`,
  qa_question_report: (id) => `${BASE.qa}/qa/questions/${id}/report`,
  qa_answer_helpful: (id) => `${BASE.qa}/qa/answers/${id}/helpful`,
  qa_answer_report: (id) => `${BASE.qa}/qa/answers/${id}/report`,
  reviews_list: (productId) => `${BASE.reviews}/reviews?product_id=${productId}&count=100&sort=relevant`,
  reviews_meta: (productId) => `${BASE.reviews}/reviews/meta?product_id=${productId}`,
  reviews_post: () => `${BASE.reviews}/reviews`,
  reviews_helpful: (id) => `${BASE.reviews}/reviews/${id}/helpful`,
  reviews_report: (id) => `${BASE.reviews}/reviews/${id}/report`,
};

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
