// Public API of the metrics module.
export {
  AgentMetrics, METRIC_NAMES, AGENT_STATES, ROLES, SKIP_REASONS, RECONNECT_TARGETS, WAL_SOURCES, PREAD_BUCKETS,
  type AgentState, type Role, type SkipReason, type WalSource, type AgentMetricsOptions,
} from './registry.ts';
export { startHttp, type HttpOptions, type HttpEndpoint } from './http.ts';
