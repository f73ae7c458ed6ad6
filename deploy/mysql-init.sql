-- The application's user table, as portcullis' mysql credential backend reads
-- it ([credentials.mysql] in proxy.toml), and a read-only account for it.
--
-- deploy/compose.yaml runs this once, when the MariaDB volume is created
-- (/docker-entrypoint-initdb.d). By hand:  mariadb -uroot < deploy/mysql-init.sql
--
-- The reader account: compose creates it first from MARIADB_USER /
-- MARIADB_PASSWORD (so its password lives in one env var, MYSQL_PASSWORD);
-- the CREATE USER below only applies when this file is run by hand, with a
-- demo password to change at once:
--   ALTER USER 'reader'@'%' IDENTIFIED BY '...';
-- Either way the account ends up able to SELECT from app.users and nothing else.
-- Enabling [registration] needs INSERT on app.users, and rehash_update needs
-- UPDATE (password_hash): grant those, and only those, if you use them.

CREATE DATABASE IF NOT EXISTS app CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS app.users (
    id            INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    username      VARCHAR(150) NOT NULL,
    email         VARCHAR(254) NOT NULL,
    password_hash VARCHAR(255) NOT NULL,                -- bcrypt ($2a$/$2b$/$2y$) or argon2id
    roles         VARCHAR(255) NOT NULL DEFAULT 'patient', -- comma list, or a JSON array
    is_active     TINYINT(1)   NOT NULL DEFAULT 1,
    created_at    TIMESTAMP    NOT NULL DEFAULT CURRENT_TIMESTAMP,
    UNIQUE KEY users_username (username),
    UNIQUE KEY users_email (email)
) ENGINE = InnoDB;

-- Demo users, the same as deploy/users.toml (demo / portcullis-demo and
-- admin / portcullis-admin). Delete them in production.
INSERT IGNORE INTO app.users (id, username, email, password_hash, roles, is_active) VALUES
    (1, 'demo', 'demo@example.com',
     '$2b$12$9h1wXTUCrFV8MfWBiceuX.Ml0hJ2acDprFgDH/GQn7HA8jL/8rmAG', 'patient', 1),
    (2, 'admin', 'admin@example.com',
     '$2b$12$PRqWAsH8nnDxKshzPDCka.E75JLHAcqh66Uq/UhmY7OAxcfldiohO', 'admin,patient', 1);

CREATE USER IF NOT EXISTS 'reader'@'%' IDENTIFIED BY 'reader-demo-password';
-- Drop whatever else the account was given (compose's MARIADB_USER gets ALL
-- on the app database), then allow reading the user table only.
REVOKE ALL PRIVILEGES, GRANT OPTION FROM 'reader'@'%';
GRANT SELECT ON app.users TO 'reader'@'%';
