SELECT i."user_id:token"::BIGINT AS user_id,
       (i."rating:float"::DOUBLE >= 4)::INTEGER AS clicked,
       i."item_id:token"::BIGINT AS item_id,
       u."age:token"::INTEGER AS age,
       u."gender:token" AS gender,
       u."occupation:token" AS occupation,
       left(u."zip_code:token", 3) AS zip_prefix,
       string_split(it."class:token_seq", ' ') AS class
FROM read_csv('ml-100k.inter', delim = '\t', header = true, all_varchar = true) AS i
JOIN read_csv('ml-100k.user', delim = '\t', header = true, all_varchar = true) AS u USING ("user_id:token")
JOIN read_csv('ml-100k.item', delim = '\t', header = true, quote = '', all_varchar = true) AS it USING ("item_id:token")
ORDER BY user_id, i."timestamp:float"::DOUBLE, item_id
