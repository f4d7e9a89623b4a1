-- bench/sync: service interfaces to publish, and a copy of public_interfaces without triggers.
CREATE SCHEMA bench;
CREATE TABLE bench.si (n bigint PRIMARY KEY, id uuid NOT NULL);
INSERT INTO gateway.service_interfaces (project_id, workflow_id, name, interface_type, callable_name, is_public)
SELECT gen_random_uuid(), gen_random_uuid(), 'bench-' || i, 'signal', 'bench', true
  FROM generate_series(1, :ninterfaces) AS i;
INSERT INTO bench.si SELECT row_number() OVER (ORDER BY id), id FROM gateway.service_interfaces;
-- Same columns, defaults, checks and indexes; no triggers and no foreign key.
CREATE TABLE bench.public_interfaces_plain (LIKE gateway.public_interfaces INCLUDING ALL);
-- The same, plus the table's foreign key; and the floor's copy, with it too.
CREATE TABLE bench.public_interfaces_fk (LIKE gateway.public_interfaces INCLUDING ALL);
CREATE TABLE bench.public_interfaces_floor (LIKE gateway.public_interfaces INCLUDING ALL);
ALTER TABLE bench.public_interfaces_fk ADD FOREIGN KEY (service_interface_id, project_id)
  REFERENCES gateway.service_interfaces (id, project_id) ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE bench.public_interfaces_floor ADD FOREIGN KEY (service_interface_id, project_id)
  REFERENCES gateway.service_interfaces (id, project_id) ON DELETE CASCADE ON UPDATE CASCADE;
CREATE SEQUENCE bench.with_triggers;
CREATE SEQUENCE bench.plain;
CREATE SEQUENCE bench.fk;
CREATE SEQUENCE bench.floor;
VACUUM ANALYZE;
