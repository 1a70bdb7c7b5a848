// The front-end's page-load mix, plus a small share of writes; one page load is defined once,
// in lib/page-load.json (the fleet benchmark and the soak replay the same). One iteration is
// one product page: the product's own reads (product, styles, related ids); then, in parallel
// as a browser does, each related product's card (product, styles, meta) and the page's reads
// (questions, reviews, meta). WRITE_SHARE of the page loads (default: page-load.json's, about
// 1% of the requests) then write once, on what the page showed, drawn by the file's weights.
import { bodies, getAll, kinds, post, put, ROUTES, weighted } from './lib/api.js';
import { productId } from './lib/ids.js';
import { options as profileOptions } from './lib/profiles.js';
import { PAGE_LOAD } from './lib/routes.js';

const GOAL_PAGE_LOADS = 15; // per second at the load profile: about 310 requests/s
const WRITE_SHARE = Number(__ENV.WRITE_SHARE || PAGE_LOAD.write_share);
const WRITES = Object.entries(PAGE_LOAD.writes).map(([route, weight]) => [weight, route]);

export const options = profileOptions(GOAL_PAGE_LOADS, kinds(Object.keys(ROUTES)), 1);

export default function () {
  const product = productId();
  const own = getAll(PAGE_LOAD.product.map((route) => [route, product]));
  const related = own[PAGE_LOAD.product.indexOf('product_related')];
  const relatedIds = related.status === 200 ? related.json() : [];
  const cards = relatedIds.flatMap((id) => PAGE_LOAD.each_related.map((route) => [route, id]));
  const responses = getAll([...cards, ...PAGE_LOAD.page.map((route) => [route, product])]);
  if (Math.random() < WRITE_SHARE) {
    const page = Object.fromEntries(PAGE_LOAD.page.map((route, i) => [route, responses[cards.length + i]]));
    writeOnce(product, page.qa_questions, page.reviews_list, page.reviews_meta);
  }
}

function pickOne(items) {
  return items.length ? items[Math.floor(Math.random() * items.length)] : null;
}

function writeOnce(product, questions, reviews, meta) {
  const question = pickOne(questions.status === 200 ? questions.json('results') : []);
  const answer = question ? pickOne(Object.keys(question.answers)) : null;
  const review = pickOne(reviews.status === 200 ? reviews.json('results.#.review_id') : []);
  const characteristics = meta.status === 200 ? meta.json('characteristics') : null;
  const action = weighted(WRITES);
  if (action === 'qa_question_helpful' && question) put(action, question.question_id);
  else if (action === 'qa_question_report' && question) put(action, question.question_id);
  else if (action === 'qa_answer_helpful' && answer) put(action, answer);
  else if (action === 'qa_answer_report' && answer) put(action, answer);
  else if (action === 'reviews_helpful' && review) put(action, review);
  else if (action === 'reviews_report' && review) put(action, review);
  else if (action === 'qa_answer_post' && question) post(action, bodies.answer(), question.question_id);
  else if (action === 'reviews_post' && characteristics) {
    post(action, bodies.review(product, Object.values(characteristics).map((c) => c.id)));
  } else post('qa_question_post', bodies.question(product)); // nothing shown to act on
}
