// The front-end's page-load mix (the same as `make bench-fleet`), plus a small share of writes.
// One iteration is one product page: the product, its styles and related ids; then, in
// parallel as a browser does, each related product's card (product, styles, meta) and the
// page's questions, reviews and meta. WRITE_SHARE of the page loads (default 0.18, about 1%
// of the requests) then write once, on what the page showed: helpful, report or a post.
import { bodies, getAll, kinds, post, put, ROUTES, weighted } from './lib/api.js';
import { productId } from './lib/ids.js';
import { options as profileOptions } from './lib/profiles.js';

const GOAL_PAGE_LOADS = 15; // per second at the load profile: about 310 requests/s
const WRITE_SHARE = Number(__ENV.WRITE_SHARE || 0.18);

export const options = profileOptions(GOAL_PAGE_LOADS, kinds(Object.keys(ROUTES)), 1);

export default function () {
  const product = productId();
  const [, , related] = getAll([
    ['product', product], ['product_styles', product], ['product_related', product]]);
  const relatedIds = related.status === 200 ? related.json() : [];
  const cards = [];
  for (const id of relatedIds) cards.push(['product', id], ['product_styles', id], ['reviews_meta', id]);
  const responses = getAll([...cards, ['qa_questions', product], ['reviews_list', product],
    ['reviews_meta', product]]);
  if (Math.random() < WRITE_SHARE) {
    const [questions, reviews, meta] = responses.slice(-3);
    writeOnce(product, questions, reviews, meta);
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
  const action = weighted([
    [25, 'qa_question_helpful'], [20, 'qa_answer_helpful'], [25, 'reviews_helpful'],
    [8, 'qa_question_post'], [7, 'qa_answer_post'], [7, 'reviews_post'],
    [3, 'qa_question_report'], [2, 'qa_answer_report'], [3, 'reviews_report'],
  ]);
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
