// The products service alone: its four read routes in the proportions a product page asks
// for them (every page reads a product, its styles and related ids; the list is rare).
import { get, kinds, weighted } from './lib/api.js';
import { pageOfProducts, productId } from './lib/ids.js';
import { options as profileOptions } from './lib/profiles.js';

const GOAL_REQUESTS = 200; // per second at the load profile
const MIX = [[40, 'product'], [35, 'product_styles'], [20, 'product_related'], [5, 'products_list']];

export const options = profileOptions(GOAL_REQUESTS, kinds(MIX.map(([, route]) => route)), 0.1);

export default function () {
  const route = weighted(MIX);
  if (route === 'products_list') get(route, pageOfProducts());
  else get(route, productId());
}
