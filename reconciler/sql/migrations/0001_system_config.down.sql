-- Removes only what ocpi-parties added: its default_party setting, and the table when ocpi-parties created
-- it (its comment says so) and nothing else is left in it. A system_config that was there before, and its
-- other rows, stay.
DO $$
BEGIN
    IF to_regclass('system_config') IS NOT NULL THEN
        DELETE FROM system_config WHERE key = 'default_party';
        IF obj_description('system_config'::regclass, 'pg_class')
               = 'ocpi-parties: created by its migration 0001_system_config'
           AND NOT EXISTS (SELECT 1 FROM system_config) THEN
            DROP TABLE system_config;
        END IF;
    END IF;
END
$$;
