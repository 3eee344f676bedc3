-- pgmaint 0098: row-level security and API exposure checks (sql/functions/maint.health_exposure.sql),
-- for databases served through PostgREST, Supabase or Hasura. Each check looks only at the
-- schemas of params.schemas that one of the roles of params.api_roles (those that exist) may
-- use; with neither (a database without the API roles) every check is silent.
INSERT INTO maint.check_config (check_name, category, warn, crit, unit, params, description) VALUES
 ('rls_disabled_exposed', 'security', NULL, NULL, NULL,
  '{"schemas": ["public"], "api_roles": ["anon", "authenticated"]}',
  'tables in an exposed schema that the API roles may read or write while row level security is disabled (critical)'),
 ('policy_exists_rls_disabled', 'security', NULL, NULL, NULL,
  '{"schemas": ["public"], "api_roles": ["anon", "authenticated"]}',
  'tables in an exposed schema with row level security policies that are not applied because row level security is disabled (warning)'),
 ('rls_enabled_no_policy', 'security', NULL, NULL, NULL,
  '{"schemas": ["public"], "api_roles": ["anon", "authenticated"]}',
  'tables in an exposed schema granted to the API roles with row level security enabled but no policy, so they get no rows (info)'),
 ('rls_policy_always_true', 'security', NULL, NULL, NULL,
  '{"schemas": ["public"], "api_roles": ["anon", "authenticated"]}',
  'permissive policies whose USING or WITH CHECK is always true for writes by the API roles (warning)'),
 ('multiple_permissive_policies', 'security', NULL, NULL, NULL,
  '{"schemas": ["public"], "api_roles": ["anon", "authenticated"]}',
  'tables with more than one permissive policy for the same API role and command: they are OR-ed and each runs for every row (warning)'),
 ('security_definer_view', 'security', NULL, NULL, NULL,
  '{"schemas": ["public"], "api_roles": ["anon", "authenticated"]}',
  'views in an exposed schema that the API roles may use and that run with their owner''s rights (15+: without security_invoker; 13/14: those that skip row level security of a table they read) (warning)'),
 ('materialized_view_exposed', 'security', NULL, NULL, NULL,
  '{"schemas": ["public"], "api_roles": ["anon", "authenticated"]}',
  'materialized views in an exposed schema readable by the API roles: they have no row level security (warning)');
