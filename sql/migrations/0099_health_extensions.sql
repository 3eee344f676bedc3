-- pgmaint 0099: extension and upgrade-risk checks (sql/functions/maint.health_extensions.sql):
-- extensions installed in schema public, extensions not updated to the default version of
-- the server's files, columns of the reg* types pg_upgrade refuses, and functions and
-- procedures (not SECURITY DEFINER: secdef_search_path has those) that use the caller's
-- search_path. extension_in_public's target_schema is where its fix_sql moves an extension.
INSERT INTO maint.check_config (check_name, category, warn, crit, unit, params, description)
VALUES ('extension_in_public', 'security', NULL, NULL, NULL, '{"target_schema": "extensions"}',
        'extensions installed in schema public (warning where PUBLIC may create objects there, else info)'),
       ('extension_update_available', 'maintenance', NULL, NULL, NULL, '{}',
        'extensions whose installed version is not the default version of the server''s extension files'),
       ('reg_type_columns', 'maintenance', NULL, NULL, NULL, '{}',
        'stored columns of reg* types (regproc, regprocedure, regoper, ...) that make pg_upgrade refuse the database'),
       ('function_search_path', 'security', NULL, NULL, NULL, '{}',
        'functions and procedures (not SECURITY DEFINER) that resolve names through the caller''s search_path');
