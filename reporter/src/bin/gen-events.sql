-- One chunk of generated events (see gen-events.rs). Distributions follow
-- the publisher's generator: half Facebook, half TikTok; 70 % top funnel;
-- event types uniform per (source, stage); Facebook ages centred on the
-- 40s, gender 48/48/4, (country, city) from 20 countries; TikTok followers
-- log-uniform up to ~15 M, top-funnel country and device; amounts
-- log-uniform 0.99 to ~2000 on checkout.complete / purchase; campaigns on
-- Facebook bottom-funnel events.
-- $1 events, $2 slice start, $3 slice length (s), $4 data start: events fall
-- uniformly in the slice, except 1 % late arrivals up to two days earlier
-- (never before the data start), in random order within the statement.
WITH params AS (
  SELECT $1::int AS n, $2::timestamptz AS slice_start, $3::float8 AS slice_secs, $4::timestamptz AS data_start
), base AS (
  SELECT g,
         CASE WHEN random() < 0.5 THEN 'facebook' ELSE 'tiktok' END AS source,
         CASE WHEN random() < 0.7 THEN 'top' ELSE 'bottom' END AS stage,
         random() AS r_type, random() AS r_time, random() AS r_late,
         random() AS r1, random() AS r2, random() AS r3, random() AS r4, random() AS r5,
         random() AS r6, random() AS r7
  FROM params, generate_series(1, params.n) AS g
), typed AS (
  SELECT b.*,
    (CASE WHEN source = 'facebook' AND stage = 'top' THEN ARRAY['ad.view','page.like','comment','video.view']
          WHEN source = 'facebook' THEN ARRAY['ad.click','form.submission','checkout.complete']
          WHEN stage = 'top' THEN ARRAY['video.view','like','share','comment']
          ELSE ARRAY['profile.visit','purchase','follow'] END) AS types
  FROM base b
), ev AS (
  SELECT t.source, t.stage,
    t.types[1 + floor(t.r_type * array_length(t.types, 1))::int] AS event_type,
    CASE WHEN t.r_late < 0.01
         THEN greatest(p.data_start, p.slice_start - t.r_time * interval '2 days')
         ELSE p.slice_start + t.r_time * p.slice_secs * interval '1 second' END AS occurred_at,
    t.r1, t.r2, t.r3, t.r4, t.r5, t.r6, t.r7
  FROM typed t, params p
), full_ev AS (
  SELECT e.*,
    (CASE e.source WHEN 'facebook' THEN 'fb-' ELSE 'ttk-' END) || gen_random_uuid() AS event_id,
    gen_random_uuid()::text AS user_id,
    CASE WHEN e.event_type IN ('checkout.complete', 'purchase')
         THEN round((floor(exp(4.6 + e.r1 * 7.6)) / 100)::numeric, 2) END AS revenue,
    CASE WHEN e.source = 'facebook' AND e.stage = 'bottom'
         THEN (ARRAY['cmp_spring_sale_2024','cmp_summer_launch','cmp_back_to_school','cmp_black_friday',
                     'cmp_holiday_gifts','cmp_new_year_fitness','cmp_brand_awareness','cmp_retargeting_q3',
                     'cmp_app_install','cmp_loyalty_rewards','cmp_flash_deal','cmp_influencer_collab'])[1 + floor(e.r7 * 12)::int] END AS campaign_id,
    CASE WHEN e.source = 'facebook' THEN least(95, 13 + floor(e.r2 * 33)::int + floor(e.r3 * 41)::int) END AS age,
    CASE WHEN e.source = 'facebook' THEN
         CASE WHEN e.r4 < 0.48 THEN 'male' WHEN e.r4 < 0.96 THEN 'female' ELSE 'non-binary' END END AS gender,
    loc.country, CASE WHEN e.source = 'facebook' THEN loc.city END AS city,
    CASE WHEN e.source = 'tiktok' THEN floor(exp(e.r2 * 16.5) - 1)::bigint END AS followers,
    CASE WHEN e.source = 'tiktok' AND e.stage = 'top' THEN (ARRAY['Android','iOS','Desktop'])[1 + floor(e.r3 * 3)::int] END AS device
  FROM ev e
  LEFT JOIN LATERAL (
    SELECT c.country, c.cities[1 + floor(e.r5 * array_length(c.cities, 1))::int] AS city
    FROM (SELECT (floor(e.r6 * 20)::int) AS idx) i
    JOIN (VALUES
      (0, 'United States', ARRAY['New York','Los Angeles','Chicago','Houston','Seattle','Miami']),
      (1, 'United Kingdom', ARRAY['London','Manchester','Birmingham','Glasgow','Leeds']),
      (2, 'Germany', ARRAY['Berlin','Hamburg','Munich','Cologne','Frankfurt']),
      (3, 'France', ARRAY['Paris','Lyon','Marseille','Toulouse','Nice']),
      (4, 'Spain', ARRAY['Madrid','Barcelona','Valencia','Seville']),
      (5, 'Italy', ARRAY['Rome','Milan','Naples','Turin','Florence']),
      (6, 'Netherlands', ARRAY['Amsterdam','Rotterdam','Utrecht','The Hague']),
      (7, 'Poland', ARRAY['Warsaw','Kraków','Wrocław','Gdańsk']),
      (8, 'Sweden', ARRAY['Stockholm','Gothenburg','Malmö']),
      (9, 'Brazil', ARRAY['São Paulo','Rio de Janeiro','Brasília','Salvador']),
      (10, 'Mexico', ARRAY['Mexico City','Guadalajara','Monterrey']),
      (11, 'Canada', ARRAY['Toronto','Montreal','Vancouver','Calgary']),
      (12, 'Japan', ARRAY['Tokyo','Osaka','Yokohama','Nagoya']),
      (13, 'South Korea', ARRAY['Seoul','Busan','Incheon']),
      (14, 'India', ARRAY['Mumbai','Delhi','Bangalore','Chennai','Kolkata']),
      (15, 'Australia', ARRAY['Sydney','Melbourne','Brisbane','Perth']),
      (16, 'Nigeria', ARRAY['Lagos','Abuja','Ibadan']),
      (17, 'South Africa', ARRAY['Johannesburg','Cape Town','Durban']),
      (18, 'Indonesia', ARRAY['Jakarta','Surabaya','Bandung']),
      (19, 'Turkey', ARRAY['Istanbul','Ankara','Izmir'])
    ) AS c(idx, country, cities) ON c.idx = i.idx
    WHERE e.source = 'facebook' OR e.stage = 'top'
  ) loc ON true
), claimed AS (
  -- Claim and insert in one statement, as the collectors do.
  INSERT INTO event_claims (source, event_id, occurred_at)
  SELECT source, event_id, occurred_at FROM full_ev
  ON CONFLICT (source, event_id) DO NOTHING
  RETURNING source, event_id
)
INSERT INTO events (event_id, source, funnel_stage, event_type, occurred_at, user_id, revenue, campaign_id,
                    age, gender, country, city, followers, device, raw, plugin_name, plugin_version, received_at)
SELECT f.event_id, f.source, f.stage, f.event_type, f.occurred_at, f.user_id, f.revenue, f.campaign_id,
       f.age, f.gender, f.country, f.city, f.followers, f.device,
       json_build_object('eventId', f.event_id, 'timestamp', f.occurred_at, 'source', f.source,
                         'funnelStage', f.stage, 'eventType', f.event_type,
                         'data', json_build_object('user', json_build_object('userId', f.user_id, 'age', f.age,
                              'gender', f.gender, 'followers', f.followers),
                              'engagement', json_build_object('campaignId', f.campaign_id, 'purchaseAmount', f.revenue::text,
                              'country', f.country, 'city', f.city, 'device', f.device))),
       f.source || '-plugin', '1.0.0', f.occurred_at + interval '1 second'
FROM full_ev f JOIN claimed c USING (source, event_id)
