// posthog-js as an app loads it, pointed at a local collector: its own defaults
// (batching, compression, fetch transport). Argv: collector URL, project key.
const posthog = require('posthog-js').default;
const [url, key] = process.argv.slice(2);
posthog.init(key, { api_host: url, autocapture: false });
posthog.capture('job_started', { job: 'from-js' });
posthog.capture('feature_used', { feature: 'search', duration_ms: 5, success: true, plan: 'pro' });
posthog.capture('$exception', { $exception_list: [{ type: 'TypeError', value: 'x is undefined' }] });
// The batch leaves on the request queue's timer; exit once it had time to.
setTimeout(() => process.exit(0), 4000);
