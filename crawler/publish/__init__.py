"""What the crawler publishes from its outputs (no Scrapy, no Twisted):

* ``polite-crawl report``: report (the entry and the files), uptake and waves (survey files),
  refusals and tallies (audit logs), charts, figures, measures, inputs;
* the transparency summary: transparency, outputs (reading output directories),
  transparency_page (its text);
* the about page: about (the files), about_content (what it says), about_server (``--serve``);
* domains: registrable domains, shared by the report and the summary.
"""
