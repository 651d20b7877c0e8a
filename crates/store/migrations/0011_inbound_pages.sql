-- What arrived of each page of a received fax (lines, bad lines, lines lost, whether it ended as a page
-- ends and whether it was confirmed to the sender), and why the call ended early if it did.
ALTER TABLE inbound_faxes ADD COLUMN page_info TEXT NOT NULL DEFAULT '[]';
ALTER TABLE inbound_faxes ADD COLUMN failure TEXT;
