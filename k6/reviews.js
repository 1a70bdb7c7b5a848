// The ratings & reviews service alone: the product page's reviews and meta (the meta is also
// read for every related product's card), and writes at a small share. A new review is
// posted the way the form does it: read the product's meta for its characteristic ids first.
import { bodies, get, kinds, post, put, weighted } from './lib/api.js';
import { productId, reportableReviewId, reviewId } from './lib/ids.js';
import { options as profileOptions } from './lib/profiles.js';

const GOAL_REQUESTS = 150; // per second at the load profile
const MIX = [[35, 'reviews_list'], [63, 'reviews_meta'], [1.2, 'reviews_helpful'],
  [0.6, 'reviews_post'], [0.2, 'reviews_report']];

export const options = profileOptions(GOAL_REQUESTS, kinds(MIX.map(([, route]) => route)), 0.1);

export default function () {
  const route = weighted(MIX);
  if (route === 'reviews_list' || route === 'reviews_meta') get(route, productId());
  else if (route === 'reviews_helpful') put(route, reviewId());
  else if (route === 'reviews_report') put(route, reportableReviewId());
  else {
    const product = productId();
    const meta = get('reviews_meta', product);
    const characteristics = meta.status === 200 ? meta.json('characteristics') : {};
    post(route, bodies.review(product, Object.values(characteristics).map((c) => c.id)));
  }
}
