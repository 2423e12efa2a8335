-- Agents are updated in place all the time (last heartbeat, connection state) and never change their indexed columns
-- then. Leaving a third of each page free lets PostgreSQL make those updates HOT: the new row version goes on the
-- same page, no index entry is added, and the old version is pruned on the next visit to the page, without VACUUM.
-- That matters most on PGlite, which runs no autovacuum. Pages written from now on keep the space free.
ALTER TABLE agents SET (fillfactor = 70);
