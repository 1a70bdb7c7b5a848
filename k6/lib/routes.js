// The API's routes, read from the services' OpenAPI descriptions (the one list; atelier_bench.routes
// reads the same files): operationId -> { service, method, path, kind, status }. A GET is a read,
// anything else a write; status is the documented success status. And the page load
// (page-load.json), the one definition k6, the fleet benchmark and the soak replay.
const SERVICES = ['products', 'qa', 'reviews'];
const PLUMBING = ['healthz', 'readyz', 'openapi', 'metrics'];

function fromOpenApi() {
  const routes = {};
  for (const service of SERVICES) {
    const document = JSON.parse(open(import.meta.resolve(`../../services/${service}/${service}/openapi.json`)));
    for (const [path, item] of Object.entries(document.paths)) {
      for (const [method, operation] of Object.entries(item)) {
        const name = operation && operation.operationId;
        if (name && !PLUMBING.includes(name)) {
          const status = Math.min(...Object.keys(operation.responses).filter((code) => code.startsWith('2')).map(Number));
          routes[name] = { service, method: method.toUpperCase(), path, kind: method === 'get' ? 'read' : 'write', status };
        }
      }
    }
  }
  return routes;
}

export const OPENAPI_ROUTES = fromOpenApi();
export const PAGE_LOAD = JSON.parse(open(import.meta.resolve('./page-load.json')));

// The path of a route with its parameters ({question_id}, ...) filled in, in order.
export function fillPath(route, values) {
  let i = 0;
  return OPENAPI_ROUTES[route].path.replace(/\{[^}]+\}/g, () => String(values[i++]));
}
