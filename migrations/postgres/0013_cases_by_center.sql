-- The center's own case list (`GET /v1/centers/{center_id}/cases`): the center's current cases,
-- newest stored version first, page by page (`seq < $2`). Without this index the query reads
-- every case of the center through the primary key and sorts them for
-- each page; with it, it walks the center's cases in `seq` order and stops at the page's end.
CREATE INDEX cases_by_center_seq ON cases (center_id, seq);
