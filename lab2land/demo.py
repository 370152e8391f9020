"""Reproducible synthetic demo data for the example notebooks.

Everything lives under ``<project>/data``:

* ``shop.sqlite`` -- the source of truth, with tables ``daily_sales``, ``transactions``,
  ``leads`` and ``demo_meta`` (the seed). Notebooks may add their own tables (``lead_scores``).
* ``daily_sales.csv``, ``transactions.csv``, ``leads.csv`` -- exports of those tables, the
  default inputs of the notebooks; rewritten after every change so they match the database.

Each day's rows are drawn from a generator seeded by ``(seed, date)``, so
``generate(days=90)`` and ``generate(days=89)`` followed by ``advance(1)`` produce the same
data, and ``advance`` needs nothing but the database to continue where it left off.

Leads behave like a CRM: every lead has an eventual outcome and a date its deal closes on;
``leads.csv`` reveals ``converted`` only for deals closed by the latest day in the data, so
the newest leads are the unlabeled ones a model should score.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import UsageError

DB_NAME = "shop.sqlite"
REGIONS = ("north", "south", "east", "west")
PRODUCTS = {  # name -> (average price, share of orders)
    "Coffee beans": (18.0, 0.38),
    "Espresso machine": (420.0, 0.05),
    "Grinder": (140.0, 0.09),
    "Mugs": (12.0, 0.28),
    "Filters": (6.5, 0.20),
}
REGION_SIZE = {"north": 1.25, "south": 1.0, "east": 0.85, "west": 0.7}
MERCHANTS = {  # category -> (median amount, fraud log-odds shift)
    "grocery": (35.0, -1.2), "restaurant": (28.0, -0.6), "fuel": (45.0, -0.3),
    "electronics": (180.0, 1.1), "travel": (320.0, 0.9), "online retail": (60.0, 0.8),
}
INDUSTRIES = {"software": 0.75, "retail": 0.0, "manufacturing": -0.3, "healthcare": 0.3,  # -> log-odds
              "finance": 0.45, "education": -0.75}
CHANNELS = {"referral": 1.2, "webinar": 0.75, "organic search": 0.15, "paid ads": -0.6,  # -> log-odds
            "trade show": 0.3}
_NAME_A = ("North", "Blue", "Silver", "Bright", "Green", "Red", "Iron", "Swift", "Oak", "Summit",
           "Harbor", "Pioneer", "Cedar", "Nova", "Atlas", "Vertex")
_NAME_B = ("wind", "stone", "field", "bridge", "line", "works", "gate", "point", "ridge", "leaf")
_NAME_C = ("Logistics", "Labs", "Foods", "Health", "Systems", "Partners", "Retail", "Energy",
           "Finance", "Studios", "Academy", "Tools")

# Column names and SQLite types of the generated tables, in order.
SCHEMA = {
    "daily_sales": {"date": "TEXT", "region": "TEXT", "product": "TEXT", "orders": "INTEGER",
                    "revenue": "REAL", "customers": "INTEGER"},
    "transactions": {"id": "INTEGER PRIMARY KEY", "timestamp": "TEXT", "amount": "REAL",
                     "merchant_category": "TEXT", "hour": "INTEGER", "country_mismatch": "INTEGER",
                     "card_present": "INTEGER", "customer_age_days": "INTEGER",
                     "distance_from_home_km": "REAL", "transactions_last_24h": "INTEGER",
                     "is_fraud": "INTEGER"},
    "leads": {"lead_id": "INTEGER PRIMARY KEY", "company": "TEXT", "signup_date": "TEXT",
              "industry": "TEXT", "company_size": "INTEGER", "source_channel": "TEXT",
              "pages_visited": "INTEGER", "emails_opened": "INTEGER", "demo_requested": "INTEGER",
              "outcome": "INTEGER", "closes_on": "TEXT"},
}
_INDEXES = ("CREATE INDEX daily_sales_date ON daily_sales (date)",
            "CREATE INDEX transactions_timestamp ON transactions (timestamp)")
_TABLE_SALT = {"daily_sales": 1, "transactions": 2, "leads": 3}


def generate(project_dir: Path, *, days: int = 90, seed: int = 7, start: date | None = None) -> dict:
    """(Re)create the demo data under ``project_dir/'data'``.

    Writes the SQLite database ``data/shop.sqlite`` (replacing any previous one, including
    tables notebooks added to it) and the CSV exports ``daily_sales.csv``,
    ``transactions.csv`` and ``leads.csv``. Every file is written to a temporary name and
    renamed into place, so a reader never sees a half-written file.

    Args:
        project_dir: The project folder; data goes to its ``data`` subfolder (created if needed).
        days: Number of days of activity, at least 1.
        seed: Seed of the random generators; the same seed, days and start give the same data.
        start: First day of data. Defaults to ``days`` days before today, so the data ends
            yesterday; pass a date for data that does not depend on the calendar.

    Returns:
        Rows per table, e.g. ``{"daily_sales": 1800, "transactions": 3150, "leads": 1300}``.

    Raises:
        ValueError: If ``days`` is less than 1.
    """
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days!r}")
    start = start or date.today() - timedelta(days=days)
    data_dir = Path(project_dir) / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".shop-", suffix=".sqlite", dir=data_dir)
    os.close(fd)
    try:
        conn = _connect(Path(tmp_name))
        try:
            conn.execute("BEGIN")
            for table, columns in SCHEMA.items():
                conn.execute(f"CREATE TABLE {table} ({', '.join(f'{c} {t}' for c, t in columns.items())})")
            for statement in _INDEXES:
                conn.execute(statement)
            conn.execute("CREATE TABLE demo_meta (key TEXT PRIMARY KEY, value TEXT)")
            conn.execute("INSERT INTO demo_meta VALUES ('seed', ?)", (str(seed),))
            counts = _append_days(conn, seed, [start + timedelta(days=i) for i in range(days)])
            conn.execute("COMMIT")
        finally:
            conn.close()
        os.chmod(tmp_name, 0o644)  # mkstemp creates 0600; the database is shared data
        os.replace(tmp_name, data_dir / DB_NAME)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    _export_csvs(data_dir)
    return counts


def advance(project_dir: Path, days: int = 1) -> dict:
    """Append ``days`` more days of activity after the latest day in the database.

    The new rows depend only on the stored seed and their dates, so two databases generated
    alike and advanced alike are identical. The CSV exports are rewritten to match.

    Args:
        project_dir: The project folder holding ``data/shop.sqlite`` (made by :func:`generate`).
        days: Number of days to add, at least 1.

    Returns:
        Rows added per table, e.g. ``{"daily_sales": 20, "transactions": 36, "leads": 14}``.

    Raises:
        UsageError: If the demo database does not exist yet.
        ValueError: If ``days`` is less than 1.
    """
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days!r}")
    data_dir = Path(project_dir) / "data"
    db_path = data_dir / DB_NAME
    if not db_path.is_file():
        raise UsageError(f"{db_path} does not exist: generate the demo data first "
                         "(`publish.py demo-data --reset`)")
    conn = _connect(db_path)
    try:
        # IMMEDIATE takes the write lock before reading the latest day, so two concurrent
        # advances append consecutive days instead of the same one twice.
        conn.execute("BEGIN IMMEDIATE")
        seed = int(conn.execute("SELECT value FROM demo_meta WHERE key = 'seed'").fetchone()[0])
        last = date.fromisoformat(conn.execute("SELECT max(date) FROM daily_sales").fetchone()[0])
        counts = _append_days(conn, seed, [last + timedelta(days=i + 1) for i in range(days)])
        conn.execute("COMMIT")
    except BaseException:
        conn.rollback()
        raise
    finally:
        conn.close()
    _export_csvs(data_dir)
    return counts


def _connect(path: Path) -> sqlite3.Connection:
    # Autocommit mode: transactions are explicit (BEGIN/COMMIT) where they matter.
    return sqlite3.connect(path, timeout=30, isolation_level=None)


def _append_days(conn: sqlite3.Connection, seed: int, days: list[date]) -> dict:
    next_tx = (conn.execute("SELECT max(id) FROM transactions").fetchone()[0] or 0) + 1
    next_lead = (conn.execute("SELECT max(lead_id) FROM leads").fetchone()[0] or 0) + 1
    rows = {table: [] for table in SCHEMA}
    for day in days:
        rows["daily_sales"] += _sales_day(_rng(seed, day, "daily_sales"), day)
        tx = _transactions_day(_rng(seed, day, "transactions"), day, next_tx)
        leads = _leads_day(_rng(seed, day, "leads"), day, next_lead)
        next_tx, next_lead = next_tx + len(tx), next_lead + len(leads)
        rows["transactions"] += tx
        rows["leads"] += leads
    for table, table_rows in rows.items():
        marks = ", ".join("?" * len(SCHEMA[table]))
        conn.executemany(f"INSERT INTO {table} VALUES ({marks})", table_rows)
    return {table: len(table_rows) for table, table_rows in rows.items()}


def _rng(seed: int, day: date, table: str) -> np.random.Generator:
    return np.random.default_rng([seed, day.toordinal(), _TABLE_SALT[table]])


def _sales_day(rng: np.random.Generator, day: date) -> list[tuple]:
    # Slow growth, a yearly cycle (busier before Christmas) and busier weekends.
    growth = 1 + 0.0008 * (day.toordinal() - date(2024, 1, 1).toordinal())
    season = 1 + 0.15 * np.cos(2 * np.pi * (day.timetuple().tm_yday - 350) / 365)
    weekday = 1.2 if day.weekday() >= 5 else 1.0
    base = 60 * growth * season * weekday
    rows = []
    for region in REGIONS:
        for product, (price, share) in PRODUCTS.items():
            orders = int(rng.poisson(base * REGION_SIZE[region] * share))
            items = orders * rng.uniform(1.0, 1.6) if orders else 0.0
            revenue = round(float(items * price * rng.normal(1.0, 0.05)), 2) if orders else 0.0
            customers = int(rng.binomial(orders, 0.9)) if orders else 0
            rows.append((day.isoformat(), region, product, orders, revenue, max(customers, min(orders, 1))))
    return rows


def _transactions_day(rng: np.random.Generator, day: date, first_id: int) -> list[tuple]:
    n = int(rng.poisson(35))
    categories = list(MERCHANTS)
    cat = rng.choice(len(categories), size=n, p=[0.3, 0.2, 0.15, 0.1, 0.07, 0.18])
    hour = rng.choice(24, size=n, p=_HOUR_WEIGHTS)
    mismatch = rng.random(n) < 0.06
    online = np.isin(cat, [3, 4, 5]) & (rng.random(n) < 0.6)
    card_present = ~online & (rng.random(n) < 0.95)
    age = np.round(rng.gamma(1.5, 500, size=n)).astype(int)
    distance = np.round(rng.lognormal(1.5, 1.2, size=n), 1)
    recent = rng.poisson(2, size=n)
    median = np.array([MERCHANTS[categories[c]][0] for c in cat])
    amount = np.round(median * rng.lognormal(0, 0.7, size=n), 2)
    night = (hour < 6)
    logit = (-3.6 + np.array([MERCHANTS[categories[c]][1] for c in cat]) + 1.5 * np.log(amount / median + 0.5)
             + 2.5 * night + 4.0 * mismatch - 2.5 * card_present - 0.9 * np.log10(age + 1)
             + 0.7 * np.log1p(distance) + 0.3 * recent)
    fraud = rng.random(n) < 1 / (1 + np.exp(-logit))
    # Fraudsters spend more than the cardholder would.
    amount = np.where(fraud, np.round(amount * rng.uniform(1.5, 4.0, size=n), 2), amount)
    minute = rng.integers(0, 3600, size=n)
    order = np.lexsort((minute, hour))
    rows = []
    for k, i in enumerate(order):
        stamp = datetime(day.year, day.month, day.day, int(hour[i])) + timedelta(seconds=int(minute[i]))
        rows.append((first_id + k, stamp.isoformat(sep=" "), float(amount[i]), categories[cat[i]], int(hour[i]),
                     int(mismatch[i]), int(card_present[i]), int(age[i]), float(distance[i]),
                     int(recent[i]), int(fraud[i])))
    return rows


_HOUR_WEIGHTS = np.array([1, 0.6, 0.4, 0.3, 0.3, 0.5, 1.2, 2.5, 3.5, 4, 4.2, 4.5,
                          5, 4.8, 4.5, 4.4, 4.6, 5, 5.2, 4.8, 4, 3, 2.2, 1.5])
_HOUR_WEIGHTS = _HOUR_WEIGHTS / _HOUR_WEIGHTS.sum()


def _leads_day(rng: np.random.Generator, day: date, first_id: int) -> list[tuple]:
    n = int(rng.poisson(9 if day.weekday() >= 5 else 16))
    industries, channels = list(INDUSTRIES), list(CHANNELS)
    rows = []
    for k in range(n):
        industry = industries[rng.integers(len(industries))]
        channel = channels[rng.choice(len(channels), p=[0.15, 0.1, 0.35, 0.3, 0.1])]
        size = int(np.clip(rng.lognormal(3.8, 1.3), 2, 20000))
        pages = int(rng.poisson(3 + 4 * (channel in ("referral", "webinar"))))
        emails = int(rng.binomial(8, 0.35))
        demo = bool(rng.random() < 0.12 + 0.03 * pages / 4)
        logit = (-4.3 + INDUSTRIES[industry] + CHANNELS[channel] + 0.5 * np.log10(size)
                 + 0.2 * pages + 0.3 * emails + 1.8 * demo + rng.normal(0, 0.4))
        outcome = int(rng.random() < 1 / (1 + np.exp(-logit)))
        closes_on = day + timedelta(days=int(rng.integers(14, 46)))
        name = f"{_NAME_A[rng.integers(len(_NAME_A))]}{_NAME_B[rng.integers(len(_NAME_B))]} " \
               f"{_NAME_C[rng.integers(len(_NAME_C))]}"
        rows.append((first_id + k, name, day.isoformat(), industry, size, channel, pages, emails,
                     int(demo), outcome, closes_on.isoformat()))
    return rows


def _export_csvs(data_dir: Path) -> None:
    conn = _connect(data_dir / DB_NAME)
    try:
        # One read transaction so the three exports show the same moment.
        conn.execute("BEGIN")
        sales = pd.read_sql_query("SELECT * FROM daily_sales ORDER BY date, region, product", conn)
        tx = pd.read_sql_query("SELECT * FROM transactions ORDER BY id", conn)
        leads = pd.read_sql_query("SELECT * FROM leads ORDER BY lead_id", conn)
        conn.execute("COMMIT")
    finally:
        conn.close()
    _write_csv(sales, data_dir / "daily_sales.csv")
    _write_csv(tx, data_dir / "transactions.csv")
    _write_csv(_crm_view(leads, date.fromisoformat(sales["date"].max())), data_dir / "leads.csv")


def _crm_view(leads: pd.DataFrame, today: date) -> pd.DataFrame:
    """Leads as a CRM shows them on ``today``: outcomes of open deals are unknown."""
    closed = leads["closes_on"] <= today.isoformat()
    view = leads.drop(columns=["outcome", "closes_on"])
    view["days_since_signup"] = (pd.Timestamp(today) - pd.to_datetime(view["signup_date"])).dt.days
    view["converted"] = leads["outcome"].where(closed).astype("Int64")
    return view


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    frame.to_csv(tmp, index=False)
    os.replace(tmp, path)
