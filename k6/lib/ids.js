// Ids from the loaded data, never invented: IDS_FILE is the JSON file that `make loadtest`
// writes from the databases (python -m atelier_k6.loadtest ids). Products are drawn by IDS=zipf (the
// default: Zipf popularity, s = 1.1 over all products) or IDS=last10 (uniform over the last
// 10% by id); the question, answer and review pools come from the last 10% of products.
// Reports take their ids from separate pools, so that no helpful, answer or read of the
// other pools ever meets an item a run hid.

const FILE = __ENV.IDS_FILE;
if (!FILE) throw new Error('IDS_FILE is not set: run through `make loadtest` (it writes the ids)');
const DATA = JSON.parse(open(FILE));
export const MODE = __ENV.IDS || 'zipf';
if (!['zipf', 'last10'].includes(MODE)) throw new Error(`IDS must be zipf or last10, not ${MODE}`);

// Product ids as [first, last] ranges in id order, with the count before each range.
const RANGES = DATA.products;
const BEFORE = [];
let total = 0;
for (const [first, last] of RANGES) {
  BEFORE.push(total);
  total += last - first + 1;
}
const PRODUCTS = total;

// The index-th product id (0-based) in id order, by binary search over the ranges.
function productAt(index) {
  let low = 0;
  let high = RANGES.length - 1;
  while (low < high) {
    const middle = (low + high + 1) >> 1;
    if (BEFORE[middle] <= index) low = middle; else high = middle - 1;
  }
  return RANGES[low][0] + index - BEFORE[low];
}

// Zipf ranks by rejection-inversion (Hörmann & Derflinger 1996): O(1) per draw, no table.
const S = 1.1;
const helper1 = (x) => (Math.abs(x) > 1e-8 ? Math.log1p(x) / x : 1 - x / 2);
const helper2 = (x) => (Math.abs(x) > 1e-8 ? Math.expm1(x) / x : 1 + x / 2);
const h = (x) => Math.exp(-S * Math.log(x));
const hIntegral = (x) => helper2((1 - S) * Math.log(x)) * Math.log(x);
const hIntegralInverse = (x) => Math.exp(helper1(Math.max(x * (1 - S), -1)) * x);
const H_X1 = hIntegral(1.5) - 1;
const H_N = hIntegral(PRODUCTS + 0.5);
const SQUEEZE = 2 - hIntegralInverse(hIntegral(2.5) - h(2));

function zipfRank() {
  for (;;) {
    const u = H_N + Math.random() * (H_X1 - H_N);
    const x = hIntegralInverse(u);
    const k = Math.min(PRODUCTS, Math.max(1, Math.round(x)));
    if (k - x <= SQUEEZE || u >= hIntegral(k + 0.5) - h(k)) return k;
  }
}

// Popularity is spread over the catalogue (rank r -> the (r * stride mod n)-th product), so
// the hot products are not simply the oldest ids. The stride is coprime with n: a permutation.
const gcd = (a, b) => (b === 0 ? a : gcd(b, a % b));
let STRIDE = Math.max(1, Math.floor(PRODUCTS * 0.6180339887));
while (gcd(STRIDE, PRODUCTS) !== 1) STRIDE += 1;

const pick = (pool) => pool[Math.floor(Math.random() * pool.length)];

export function productId() {
  if (MODE === 'zipf') return productAt(((zipfRank() - 1) * STRIDE) % PRODUCTS);
  const start = Math.floor(PRODUCTS * 0.9);
  return productAt(start + Math.floor(Math.random() * (PRODUCTS - start)));
}

export const questionId = () => pick(DATA.questions);
export const answerId = () => pick(DATA.answers);
export const reviewId = () => pick(DATA.reviews);
export const reportableQuestionId = () => pick(DATA.reportable_questions);
export const reportableAnswerId = () => pick(DATA.reportable_answers);
export const reportableReviewId = () => pick(DATA.reportable_reviews);
export const pageOfProducts = () => 1 + Math.floor(Math.random() * 20);
