-- Training rows: each user's ratings but the latest 20% (a time-ordered hold-out per user),
-- joined with the user and the movie; clicked = rating >= 4; rows of a user together, in time order.
-- Run from the folder holding ml-100k.inter, ml-100k.user and ml-100k.item.
WITH rated AS (
  SELECT i."user_id:token"::BIGINT AS user_id,
         (i."rating:float"::DOUBLE >= 4)::INTEGER AS clicked,
         i."item_id:token"::BIGINT AS item_id,
         u."age:token"::INTEGER AS age,
         u."gender:token" AS gender,
         u."occupation:token" AS occupation,
         left(u."zip_code:token", 3) AS zip_prefix,
         string_split(it."class:token_seq", ' ') AS class,
         i."timestamp:float"::DOUBLE AS time,
         row_number() OVER (PARTITION BY i."user_id:token" ORDER BY i."timestamp:float"::DOUBLE DESC, i."item_id:token"::BIGINT DESC) - 1 AS recent,
         count(*) OVER (PARTITION BY i."user_id:token") AS ratings
  FROM read_csv('ml-100k.inter', delim = '\t', header = true, all_varchar = true) AS i
  JOIN read_csv('ml-100k.user', delim = '\t', header = true, all_varchar = true) AS u USING ("user_id:token")
  JOIN read_csv('ml-100k.item', delim = '\t', header = true, quote = '', all_varchar = true) AS it USING ("item_id:token")
)
SELECT * FROM rated WHERE recent >= ceil(0.2 * ratings) ORDER BY user_id, time, item_id
