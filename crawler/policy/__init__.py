"""What a crawl may do (sans-IO): the reservation policy, the network guard, scope and pay per
crawl."""
