"""Alert messages: the text of each alert and its markup for each target format."""
